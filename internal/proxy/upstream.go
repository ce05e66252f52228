package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"fronttier/internal/backend"
)

// UpstreamOptions tunes every backend's forwarder.
type UpstreamOptions struct {
	// DialTimeout bounds connecting to the backend; default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is sent; 0 = none. Past it the client gets 504.
	ResponseHeaderTimeout time.Duration
	// ReadTimeout bounds each silence of the backend while its answer is
	// read, head and body (nginx's proxy_read_timeout); 0 = none. An
	// answer that keeps moving is never cut; one that stalls gets 504
	// before its head was sent, or a closed client connection after.
	ReadTimeout time.Duration
	// MaxHeaderBytes bounds a response head (any one line may take all
	// of it); default 1 MiB. Larger heads are refused (502).
	MaxHeaderBytes int
	// MaxIdleConns is the size of the backend's keep-alive pool; default 256.
	MaxIdleConns int
	// IdleTimeout closes pooled connections unused for this long; default
	// 90s.
	IdleTimeout time.Duration
	// TrustedProxies are the clients whose X-Forwarded-* headers are kept
	// (X-Forwarded-For extended with their address); from anyone else
	// those headers are replaced.
	TrustedProxies []netip.Prefix
	// Upgrades, if set, tracks upgraded (WebSocket) connections so that a
	// graceful shutdown can drain them.
	Upgrades *Upgrades
	// Latency, if set, gives each backend's observer of response-head
	// times in milliseconds (resolved once per backend).
	Latency func(backendID string) interface{ Observe(float64) }
	// Log receives errors met while copying bodies.
	Log *slog.Logger
}

// Upstream forwards requests to one backend over that backend's own pool of
// HTTP/1.1 keep-alive connections. It is the backend.Factory product: one
// per live backend, its idle connections closed when the backend leaves the
// registry.
//
// It is a lean HTTP/1.1 client instead of http.Transport: a request is
// written and its response read on the handler's own goroutine, with no
// per-connection reader and writer goroutines and no channel hand-offs
// (profiling showed those among the largest costs of a proxied request).
// Request bodies that may be large are written from a second goroutine so
// that a backend answering before it has read the whole body cannot
// deadlock the exchange.
type Upstream struct {
	addr    string
	o       UpstreamOptions
	dialer  net.Dialer
	bufs    *bufferPool
	log     *slog.Logger
	latency interface{ Observe(float64) } // nil: not measured

	mu     sync.Mutex // guards idle and closed; per backend, never global
	idle   []*pconn   // a stack: the most recently used connection is last
	closed bool
}

// NewFactory returns the backend.Factory that builds Upstreams with o.
func NewFactory(o UpstreamOptions) backend.Factory {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 256
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = defaultMaxHead
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	bufs := &bufferPool{}
	return func(b *backend.Backend) http.Handler {
		u := &Upstream{
			addr:   b.Addr,
			o:      o,
			dialer: net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second},
			bufs:   bufs,
			log:    o.Log.With("backend_addr", b.Addr),
		}
		if o.Latency != nil {
			u.latency = o.Latency(b.ID)
		}
		return u
	}
}

// get returns a pooled connection (reused true) or dials a new one.
func (u *Upstream) get(ctx context.Context) (pc *pconn, reused bool, err error) {
	now := time.Now()
	u.mu.Lock()
	for n := len(u.idle); n > 0; n = len(u.idle) {
		pc = u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if now.Sub(pc.idleSince) < u.o.IdleTimeout && pc.alive() {
			return pc, true, nil
		}
		pc.close()
		u.mu.Lock()
	}
	u.mu.Unlock()
	c, err := u.dialer.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, false, err
	}
	return newPconn(c, u.o.MaxHeaderBytes), false, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (u *Upstream) put(pc *pconn) {
	if pc.br.Buffered() > 0 { // bytes nobody asked for: not a clean state
		pc.close()
		return
	}
	now := time.Now()
	pc.idleSince = now
	pc.unwatch()
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.o.MaxIdleConns {
		u.mu.Unlock()
		pc.close()
		return
	}
	// The oldest connections are at the bottom of the stack; drop those
	// idle for too long while we are here.
	var expired []*pconn
	for len(u.idle) > 0 && now.Sub(u.idle[0].idleSince) > u.o.IdleTimeout {
		expired = append(expired, u.idle[0])
		u.idle = u.idle[1:]
	}
	u.idle = append(u.idle, pc)
	u.mu.Unlock()
	for _, e := range expired {
		e.close()
	}
}

// CloseIdleConnections closes the pool's idle connections and stops
// pooling; connections of requests in flight close when those finish.
func (u *Upstream) CloseIdleConnections() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// ServeHTTP forwards r to the backend and copies the answer to w.
// Failures before any of the answer was written are not answered: they are
// left in the recorder for the Handler to retry or report.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex, err := u.exchange(w, r)
	if err != nil {
		recordError(w, r, err)
		return
	}
	u.respond(w, r, ex)
}

// exchange is one request sent and its response head read.
type exchange struct {
	pc      *pconn
	head    *respHead
	bodyErr <-chan error // the body writer's result, when it runs apart
}

// exchange sends r and reads the response headers. A reused connection
// that turns out to have been closed by the backend is replaced once,
// when sending the request again is safe.
func (u *Upstream) exchange(w http.ResponseWriter, r *http.Request) (*exchange, error) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		pc, reused, err := u.get(ctx)
		if err != nil {
			return nil, err
		}
		ex, err, sent := u.try(pc, w, r)
		if err == nil {
			return ex, nil
		}
		pc.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		if !reused || attempt > 0 || (sent && !replayable(r)) {
			return nil, err
		}
	}
}

// replayable reports whether r may be sent again on a new connection
// after it may have reached the backend: an idempotent method, and no body
// (what was read of it cannot be read again here; the Handler replays
// buffered bodies on another backend).
func replayable(r *http.Request) bool { return r.ContentLength == 0 && idempotent(r.Method) }

// try writes r on pc and reads the response head, its end-to-end fields
// straight into w's header. sent reports whether the request may have
// reached the backend.
func (u *Upstream) try(pc *pconn, w http.ResponseWriter, r *http.Request) (_ *exchange, err error, sent bool) {
	ex := &pc.ex
	*ex = exchange{pc: pc}
	start := time.Now()
	client, _ := w.(pauser)
	pc.watch(r.Context(), client, u.o.ResponseHeaderTimeout, u.o.ReadTimeout, start)
	if err := writeHead(pc.bw, r, u.trusted(r)); err != nil {
		return nil, err, false
	}
	if r.Body == nil || r.ContentLength == 0 {
		if err := pc.bw.Flush(); err != nil {
			return nil, err, true
		}
	} else if r.ContentLength > 0 && r.ContentLength <= maxReplayBody {
		// Small bodies fit the socket buffers: write them inline.
		if err := u.writeBody(pc.bw, r); err != nil {
			return nil, err, true
		}
	} else {
		// A large or streamed body is written while the response is read:
		// a backend may answer (and stop reading) before the body ends. A
		// body that fails (the client's upload broke off, or went over the
		// size limit) ends the exchange: closing the connection makes the
		// response read below fail at once.
		errc := make(chan error, 1)
		ex.bodyErr = errc
		go func() {
			err := u.writeBody(pc.bw, r)
			if err != nil {
				pc.c.Close()
			}
			errc <- err
		}()
	}
	head, err := readHead(pc, w, r)
	if err != nil {
		if ex.bodyErr != nil {
			pc.c.Close() // unblock the body writer
			if berr := <-ex.bodyErr; berr != nil && !isConnClosed(berr) {
				return nil, berr, true // the body's own failure is the cause
			}
		}
		return nil, err, true
	}
	pc.hard = time.Time{} // the body may take as long as it takes
	if u.latency != nil {
		u.latency.Observe(float64(time.Since(start).Microseconds()) / 1000)
	}
	ex.head = head
	return ex, nil, true
}

// isConnClosed reports whether err only says the connection was closed
// under the writer (by the reader giving up).
func isConnClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// trusted reports whether r comes from a trusted proxy.
func (u *Upstream) trusted(r *http.Request) bool {
	if len(u.o.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range u.o.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// maxInterim bounds the interim (1xx) answers read before the final one:
// a backend cannot keep an exchange in 1xx forever (more: 502). Go's
// Transport capped them at 5 too until it let traces see them.
const maxInterim = 5

// readHead reads the final response head (a 101 ends the exchange as an
// upgrade). Interim answers are forwarded to clients that speak HTTP/1.1
// or later (103 Early Hints, 102 Processing), but 100 Continue: the
// proxy's server answered the client's Expect itself, and the backend is
// never asked for one.
func readHead(pc *pconn, w http.ResponseWriter, r *http.Request) (*respHead, error) {
	h := w.Header()
	for n := 1; ; n++ {
		head, err := pc.hp.read(pc.br, r.Method, h)
		if err != nil {
			return nil, err
		}
		if head.status >= 200 || head.status == http.StatusSwitchingProtocols {
			return head, nil
		}
		if n > maxInterim {
			clear(h)
			return nil, fmt.Errorf("%w: more than %d interim (1xx) answers", errMalformed, maxInterim)
		}
		if head.status != http.StatusContinue && r.ProtoAtLeast(1, 1) {
			w.WriteHeader(head.status) // sent at once, with the fields in h
		}
		clear(h) // an interim answer's fields are not the final answer's
	}
}

// bufferPool recycles the 32 KiB buffers bodies are copied through.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, 32<<10)
	return &buf
}

func (b *bufferPool) put(buf *[]byte) { b.p.Put(buf) }

// recordError hands a forwarding error to the Handler through the
// recorder instead of answering.
func recordError(w http.ResponseWriter, _ *http.Request, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.err = err
		return
	}
	http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
}
