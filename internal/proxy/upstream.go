package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"fronttier/internal/backend"
)

// UpstreamOptions tunes every backend's forwarder.
type UpstreamOptions struct {
	// DialTimeout bounds connecting to the backend; default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is sent; 0 = none.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConns is the size of the backend's keep-alive pool; default 256.
	MaxIdleConns int
	// IdleTimeout closes pooled connections unused for this long; default
	// 90s.
	IdleTimeout time.Duration
	// SendTimeout is re-armed while a long answer is copied to the client
	// (see Options.SendTimeout); 0 = none.
	SendTimeout time.Duration
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

// pconn is one pooled connection to the backend.
//
// Reads go through pconn.Read, which watches the exchange in progress: the
// connection's read deadline ticks every watchTick, and at each tick the
// read resumes unless the client has left or the response-header deadline
// has passed. One deadline set per exchange replaces a per-request context
// watch (context.AfterFunc cost six allocations and a lock per request).
type pconn struct {
	c         net.Conn
	br        *bufio.Reader // reads through the pconn itself
	bw        *bufio.Writer
	idleSince time.Time

	hp headParser // scratch space for response heads
	ex exchange   // the exchange in progress, reused

	// Set by the handler's goroutine for the exchange in progress, read
	// only by that goroutine.
	ctx     context.Context // the client's request; nil when idle
	hard    time.Time       // response-header deadline; zero = none
	hardFor time.Duration   // its length, for the error
}

// watchTick is how often a read blocked on the backend checks whether the
// client is still there.
const watchTick = 500 * time.Millisecond

// Read implements io.Reader for br: see pconn.
func (pc *pconn) Read(p []byte) (int, error) {
	for {
		n, err := pc.c.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if pc.ctx != nil && pc.ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w", context.Cause(pc.ctx), err)
		}
		now := time.Now()
		if !pc.hard.IsZero() && !now.Before(pc.hard) {
			return 0, timeoutError{pc.hardFor}
		}
		pc.c.SetReadDeadline(pc.tick(now))
	}
}

// watch starts watching an exchange for ctx from now, with a
// response-header deadline when headerTimeout is not zero.
func (pc *pconn) watch(ctx context.Context, headerTimeout time.Duration, now time.Time) {
	pc.ctx, pc.hard, pc.hardFor = ctx, time.Time{}, headerTimeout
	if headerTimeout > 0 {
		pc.hard = now.Add(headerTimeout)
	}
	pc.c.SetReadDeadline(pc.tick(now))
}

// tick returns the next read deadline: a watch tick away, or the
// response-header deadline if sooner.
func (pc *pconn) tick(now time.Time) time.Time {
	next := now.Add(watchTick)
	if !pc.hard.IsZero() && pc.hard.Before(next) {
		return pc.hard
	}
	return next
}

func (pc *pconn) close() { pc.c.Close() }

// staleCheckAfter is how long a connection may sit idle before it is
// checked for a close by the backend before reuse (one non-blocking peek).
// Servers' keep-alive timeouts are seconds or more, so busier connections
// skip the check.
const staleCheckAfter = time.Second

// get returns a pooled connection (reused true) or dials a new one.
func (u *Upstream) get(ctx context.Context) (pc *pconn, reused bool, err error) {
	now := time.Now()
	u.mu.Lock()
	for n := len(u.idle); n > 0; n = len(u.idle) {
		pc = u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		idle := now.Sub(pc.idleSince)
		if idle < staleCheckAfter || (idle < u.o.IdleTimeout && alive(pc)) {
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
	pc = &pconn{c: c, bw: bufio.NewWriterSize(c, 4<<10)}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	return pc, false, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (u *Upstream) put(pc *pconn) {
	if pc.br.Buffered() > 0 { // bytes nobody asked for: not a clean state
		pc.close()
		return
	}
	now := time.Now()
	pc.idleSince, pc.ctx = now, nil
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
	pc.watch(r.Context(), u.o.ResponseHeaderTimeout, start)
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
	head, err := readHead(pc, r.Method, w.Header())
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

// timeoutError is a response-header timeout.
type timeoutError struct{ after time.Duration }

func (e timeoutError) Error() string {
	return fmt.Sprintf("backend sent no response headers within %s", e.after)
}
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// readHead reads the final response head, skipping interim 1xx answers
// but 101 (which ends the exchange as an upgrade): the Go server has already
// told the client to continue.
func readHead(pc *pconn, method string, h http.Header) (*respHead, error) {
	for {
		head, err := pc.hp.read(pc.br, method, h)
		if err != nil {
			return nil, err
		}
		if head.status >= 200 || head.status == http.StatusSwitchingProtocols {
			return head, nil
		}
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
