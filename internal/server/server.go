// Package server serves HTTP/1.x on the proxy's data-path listeners with a
// lean loop of its own, and hands connections that negotiate another
// protocol by ALPN (HTTP/2) to that protocol's server.
//
// Why not net/http's server: under load it spends, per request, a context
// with cancel, a background read goroutine that watches for the client
// leaving (and the deadline resets and condition-variable hand-off to stop
// it), a clone of the header at WriteHeader and a sorted header write. Here
// one goroutine per connection reads requests into pooled buffers and
// writes answers straight into the connection's buffer; whether the client
// left is asked of the socket only when the handler wants to know (the
// request context's Err peeks at it without reading).
//
// It serves any http.Handler, with the parts of net/http's contract the
// data path uses: keep-alive and pipelining (answered in order), chunked
// and length-delimited bodies both ways, Expect: 100-continue, trailers,
// Flush, Hijack, read and write deadlines through
// http.ResponseController, header and idle timeouts, a header size limit,
// graceful Shutdown. It is stricter than net/http where a request could be
// read two ways (see parseRequest). Differences: response fields are
// written in the header map's order, not sorted; Content-Type is never
// sniffed; a handler answer with no Content-Length is chunked unless the
// handler finishes without writing a body; a hijacked connection's read
// deadline is cleared.
//
// A connection waiting for a request holds no buffers and, after a while,
// only a small goroutine stack (idle.go): idle keep-alive connections are
// most of a proxy's connections.
package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. Handler is required.
type Options struct {
	Handler http.Handler
	// TLS, when set, makes the server terminate TLS on every connection.
	TLS *tls.Config
	// NextProto serves connections whose ALPN protocol is a key ("h2"),
	// as http.Server.TLSNextProto does.
	NextProto map[string]func(*tls.Conn)
	// ReadHeaderTimeout bounds the TLS handshake and each request head;
	// IdleTimeout bounds the wait for the next request on a kept-alive
	// connection (ReadHeaderTimeout when 0). 0 means no limit.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds a request head; default 1 MiB.
	MaxHeaderBytes int
	// MaxConns caps the open connections (upgraded ones included); 0
	// means no cap. At the cap, a connection just accepted waits for a
	// slot (the rest wait in the listener's accept queue), and to give it
	// one at once the server closes idle keep-alive connections, the one
	// idle longest first, as nginx does: one when the wait begins, and
	// another each time a connection turns idle while it lasts. Only
	// connections waiting for their next request are closed this way,
	// never one in the middle of an exchange, a new one that has not sent
	// its first request yet, nor a hijacked one.
	MaxConns int
	// ConnState is called as connections change state, as in http.Server,
	// with one departure: a hijacked connection, reported StateHijacked
	// when it is handed over, is reported again, StateClosed, when the
	// handler closes it (the first Close only, on the goroutine calling
	// it). net/http never reports a hijacked connection's end; this server
	// does so that a hook counting open connections can count upgraded
	// ones (WebSockets) until they really close, by counting StateNew up
	// and StateClosed down and ignoring StateHijacked.
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog receives failed TLS handshakes and handler panics, in
	// net/http's words ("http: TLS handshake error from ADDR: REASON").
	ErrorLog *log.Logger
	// OnShutdown runs when Shutdown starts (to tell HTTP/2 connections to
	// go away).
	OnShutdown []func()

	moveAfter time.Duration // tests: moveAfter's value instead (idle.go)
}

// Server serves HTTP/1.x connections. Its zero value is not usable; use New.
type Server struct {
	o         Options
	maxHeader int
	date      dateCache
	bufs      bufPool
	closing   atomic.Bool
	done      chan struct{} // closed when closing is set
	doneOnce  sync.Once
	slots     chan struct{} // MaxConns semaphore, or nil

	// waiting counts the accept loops waiting for a slot (MaxConns); while
	// it is not 0, a connection turning idle signals idled (capacity 1),
	// which wakes a waiting loop to reclaim an idle connection.
	waiting atomic.Int32
	idled   chan struct{}

	moveAfter time.Duration // see the constant moveAfter

	mu        sync.Mutex // guards listeners and conns
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
}

// New returns a Server.
func New(o Options) *Server {
	s := &Server{o: o, maxHeader: o.MaxHeaderBytes, done: make(chan struct{}), moveAfter: o.moveAfter}
	if s.maxHeader <= 0 {
		s.maxHeader = 1 << 20
	}
	if s.moveAfter <= 0 {
		s.moveAfter = moveAfter
	}
	if o.MaxConns > 0 {
		s.slots = make(chan struct{}, o.MaxConns)
		s.idled = make(chan struct{}, 1)
	}
	return s
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, when it returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var delay time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off and retry,
			// as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logf("http: Accept error: %v; retrying in %v", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !s.acquire() {
			raw.Close()
			return http.ErrServerClosed
		}
		c := s.newConn(raw)
		if !s.track(c) {
			raw.Close()
			s.release()
			return http.ErrServerClosed
		}
		s.hook(c.rwc, http.StateNew)
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, lets active ones
// finish their exchange and close, and returns when none is left or ctx
// ends (then with ctx's error; Close ends the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeListeners()
	for _, f := range s.o.OnShutdown {
		go f()
	}
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 100*time.Millisecond)
			t.Reset(wait)
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.rwc.Close()
	}
	return nil
}

func (s *Server) shuttingDown() bool { return s.closing.Load() }

// acquire takes a connection slot (MaxConns) for a connection just
// accepted. At the cap it reclaims idle keep-alive connections, the one
// idle longest first: one as the wait begins, one more each time a
// connection turns idle during it. It reports false when the server
// closes first.
func (s *Server) acquire() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case <-s.idled: // a stale signal, from before this wait
	default:
	}
	for {
		// A connection that turns idle after this scan sees waiting set
		// and signals idled: none is missed.
		s.reclaimIdle()
		select {
		case s.slots <- struct{}{}:
			return true
		case <-s.idled:
		case <-s.done:
			return false
		}
	}
}

// reclaimIdle closes the connection that has waited longest for its next
// request, if any, so that its slot goes to a new client. Like closeIdle it
// claims the connection by moving it from idle to closed, so that a
// request arriving meanwhile keeps it (the move fails) and the
// connection's goroutine, seeing the close, releases the slot once. It
// closes the TCP connection, not the TLS one: no close_notify is written,
// so a client that stopped reading cannot block the accept loop.
func (s *Server) reclaimIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range reclaimTries {
		var oldest *conn
		var since int64
		for c := range s.conns {
			if c.state.Load() != stateIdle {
				continue
			}
			if t := c.idleSince.Load(); oldest == nil || t < since {
				oldest, since = c, t
			}
		}
		if oldest == nil {
			return
		}
		if oldest.state.CompareAndSwap(stateIdle, stateClosed) {
			oldest.raw.Close()
			return
		}
	}
}

// reclaimTries bounds how often reclaimIdle looks again when the
// connection it chose got a request first.
const reclaimTries = 4

// idle is told by a connection that it has turned idle: it wakes an accept
// loop waiting for a slot, if one is.
func (s *Server) idle() {
	if s.waiting.Load() == 0 {
		return
	}
	select {
	case s.idled <- struct{}{}:
	default:
	}
}

// release frees a connection slot (MaxConns).
func (s *Server) release() {
	if s.slots != nil {
		<-s.slots
	}
}

func (s *Server) closeListeners() {
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes the connections waiting for a request (and those that
// never sent one within 5 s, as net/http does) and reports whether none is
// left at all.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch c.state.Load() {
		case stateIdle:
			if c.state.CompareAndSwap(stateIdle, stateClosed) {
				c.rwc.Close()
			}
		case stateNew:
			if time.Since(c.since) > 5*time.Second && c.state.CompareAndSwap(stateNew, stateClosed) {
				c.rwc.Close()
			}
		}
	}
	return len(s.conns) == 0
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.shuttingDown() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

// track registers a new connection; false when the server is closing.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) hook(c net.Conn, st http.ConnState) {
	if s.o.ConnState != nil {
		s.o.ConnState(c, st)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.o.ErrorLog != nil {
		s.o.ErrorLog.Printf(format, args...)
	}
}

// connBufs is what a connection uses only while it reads a request or
// answers one: its read and write buffers, the head buffer, the request's
// field storage and the answer's header map. A connection takes one from
// the server's pool when a request's first bytes arrive and gives it back,
// emptied, when it waits for its next request with nothing buffered
// (idle.go) or closes: idle connections hold none, busy ones share them
// without allocating. What a handler was given of it (the request's
// Header, the ResponseWriter's Header) is another connection's once the
// handler has returned, as net/http's contract says it may be.
type connBufs struct {
	br     *bufio.Reader
	bw     *bufio.Writer
	head   []byte // the request head being parsed
	fields fields // the request's header fields
	header http.Header
}

// bufPool recycles connBufs between connections.
type bufPool struct{ p sync.Pool }

// bufSize is the size of each connection's read and write buffers.
const bufSize = 4 << 10

// get returns a connBufs reading from and writing to c.
func (p *bufPool) get(c io.ReadWriter) *connBufs {
	b, _ := p.p.Get().(*connBufs)
	if b == nil {
		return &connBufs{br: bufio.NewReaderSize(c, bufSize), bw: bufio.NewWriterSize(c, bufSize), header: make(http.Header)}
	}
	b.br.Reset(c)
	b.bw.Reset(c)
	return b
}

// put empties b and keeps it for another connection.
func (p *bufPool) put(b *connBufs) {
	b.br.Reset(nil)
	b.bw.Reset(nil)
	b.head = b.head[:0]
	clear(b.fields.h)
	clear(b.fields.vals)
	clear(b.header)
	p.p.Put(b)
}
