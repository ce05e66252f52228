package proxy

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"fronttier/internal/backend"
)

// UpstreamOptions tunes every backend's forwarder.
type UpstreamOptions struct {
	// DialTimeout bounds connecting to the backend.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers; 0 = none.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConns is the size of the backend's keep-alive pool.
	MaxIdleConns int
	// Log receives errors the reverse proxy reports while copying bodies.
	Log *slog.Logger
}

// Upstream forwards requests to one backend over that backend's own
// keep-alive connection pool. It is the backend.Factory product: one per
// live backend, dropped (and its idle connections closed) when the backend
// leaves the registry.
type Upstream struct {
	rp httputil.ReverseProxy
	tr *http.Transport
}

// NewFactory returns the backend.Factory that builds Upstreams with o.
func NewFactory(o UpstreamOptions) backend.Factory {
	bufs := &bufferPool{}
	return func(b *backend.Backend) http.Handler { return newUpstream(b.Addr, o, bufs) }
}

func newUpstream(addr string, o UpstreamOptions, bufs *bufferPool) *Upstream {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy between us and a backend
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   o.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding goes through untouched; the
		// transport must not add gzip and decompress behind our back.
		DisableCompression: true,
	}
	u := &Upstream{tr: tr}
	u.rp = httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host // the backend sees the Host the client asked for
			pr.SetXForwarded()
		},
		Transport:    tr,
		BufferPool:   bufs,
		ErrorHandler: recordError,
	}
	if o.Log != nil {
		u.rp.ErrorLog = slog.NewLogLogger(o.Log.With("backend_addr", addr).Handler(), slog.LevelDebug)
	}
	return u
}

// ServeHTTP forwards r. Failures before a response starts are not written:
// they are left in the recorder for the Handler to retry or answer.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.rp.ServeHTTP(w, r) }

// CloseIdleConnections closes the pool's idle connections; connections of
// requests in flight close when those finish.
func (u *Upstream) CloseIdleConnections() { u.tr.CloseIdleConnections() }

// recordError is the reverse proxy's error handler: it hands the error to
// the Handler through the recorder instead of answering.
func recordError(w http.ResponseWriter, _ *http.Request, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.err = err
		return
	}
	http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
}

// bufferPool recycles the 32 KiB buffers bodies are copied through.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
