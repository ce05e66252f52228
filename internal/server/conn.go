package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Connection states, for Shutdown: new and idle connections may be closed,
// active ones finish their exchange first.
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateClosed
)

// conn is one client connection and the goroutine serving it.
type conn struct {
	s     *Server
	rwc   net.Conn // what requests are read from: the TLS connection, or raw
	raw   net.Conn // the accepted TCP connection
	since time.Time
	state atomic.Int32
	// idleSince is when the connection last turned idle, unix ns; kept
	// only with MaxConns, for reclaimIdle to close the oldest first.
	idleSince atomic.Int64

	// connBufs holds the connection's buffers, from the server's pool;
	// nil while it waits for a request with nothing buffered (idle.go).
	*connBufs
	held       atomic.Bool        // connBufs is set, for tests to read without a race
	movedWait  atomic.Bool        // the wait for a request moved to a fresh goroutine (tests)
	rc         syscall.RawConn    // raw's socket, to wait on without a buffer; nil: none
	readableFn func(uintptr) bool // c.readable, for rc.Read
	woke       bool               // readable was called before, in this wait
	peek       [1]byte            // readable's peek
	bigHead    bool               // the last head was large: drop fields before the next
	w          response           // reused for every request
	ctx        connCtx            // every request's context
	tmpl       http.Request       // copied into each request: context, addresses, TLS
	body       *body              // the current request's body, or nil
	werr       error              // a write to the client failed

	continueMu  sync.Mutex   // orders "100 Continue" against the answer
	rdl, wdl    atomic.Int64 // read and write deadlines set, unix ns; 0 = none
	canContinue atomic.Bool  // a 100 Continue may still be sent
	continued   atomic.Bool  // a 100 Continue was sent for this request
	hijacked    bool
}

func (s *Server) newConn(raw net.Conn) *conn {
	c := &conn{s: s, raw: raw, rwc: raw, since: time.Now()}
	if s.o.TLS != nil {
		c.rwc = tls.Server(raw, s.o.TLS)
	}
	c.ctx = connCtx{c: c, done: make(chan struct{})}
	c.w = response{c: c}
	if c.rc = rawConn(raw); c.rc != nil {
		c.readableFn = c.readable
	}
	return c
}

// serve serves the connection until it closes, is hijacked or is handed to
// another protocol.
func (c *conn) serve() {
	if tc, ok := c.rwc.(*tls.Conn); ok {
		if !c.handshake(tc) {
			c.close(false)
			return
		}
	}
	c.prepare()
	c.loop(true, resumed{})
}

// prepare sets up the template of the connection's requests.
func (c *conn) prepare() {
	c.tmpl.RemoteAddr = c.raw.RemoteAddr().String()
	c.tmpl = *c.tmpl.WithContext(&c.ctx)
}

// loop serves requests until the connection closes, is hijacked, or its
// wait for a request moves to a fresh goroutine (see waitRequest), which
// carries on with the wait r. first: no request was read yet.
func (c *conn) loop(first bool, r resumed) {
	linger, moved := false, false
	defer func() {
		if !moved && !c.hijacked { // moved: c is the fresh goroutine's now
			c.close(linger)
		}
	}()
	for {
		switch c.await(first, r) {
		case waitMoved:
			moved = true
			return
		case waitEnded:
			return
		}
		first, r = false, resumed{}
		req, p, err := c.readRequest()
		if err != nil {
			linger = c.refuse(err)
			return
		}
		keep, lingerAfter := c.handle(req, p)
		if !keep || c.s.shuttingDown() {
			linger = lingerAfter
			return
		}
		c.clean()
	}
}

// handshake runs the TLS handshake within the header timeout and hands
// connections that negotiated another protocol (h2) to its server. It
// reports whether HTTP/1.x is to be served.
func (c *conn) handshake(tc *tls.Conn) bool {
	s := c.s
	if d := s.o.ReadHeaderTimeout; d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	if err := tc.Handshake(); err != nil {
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			reason = "client sent an HTTP request to an HTTPS server"
		}
		s.logf("http: TLS handshake error from %s: %v", c.raw.RemoteAddr(), reason)
		return false
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tmpl.TLS = &st
	switch proto := st.NegotiatedProtocol; proto {
	case "", "http/1.1", "http/1.0":
		return true
	default:
		if fn := s.o.NextProto[proto]; fn != nil && c.state.CompareAndSwap(stateNew, stateActive) {
			fn(tc)
		}
		return false
	}
}

// looksLikeHTTP reports whether a TLS record header is really the start of
// a plain HTTP request (net/http's test).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// await waits for the next request's first byte: within the header
// timeout for the first request, the idle timeout between requests (a
// request already buffered, pipelined, needs no waiting). r is a wait
// begun on another goroutine, to carry on with. It reports whether the
// request came, the connection is to close, or the wait moved to a fresh
// goroutine.
func (c *conn) await(first bool, r resumed) waitResult {
	s := c.s
	from := stateNew
	if !first {
		from = stateIdle
	}
	if !first && !r.ok {
		if s.slots != nil {
			c.idleSince.Store(time.Now().UnixNano())
			c.state.Store(stateIdle)
			s.idle()
		} else {
			c.state.Store(stateIdle)
		}
		s.hook(c.rwc, http.StateIdle)
		if s.shuttingDown() {
			return waitEnded
		}
	}
	armed := false // the header deadline is already running
	if c.connBufs == nil || c.br.Buffered() == 0 {
		wait := s.o.ReadHeaderTimeout
		if !first && s.o.IdleTimeout > 0 {
			wait = s.o.IdleTimeout
		}
		res, waited := c.waitRequest(wait, first, r)
		if res != waitReady {
			return res
		}
		armed = waited && wait == s.o.ReadHeaderTimeout
	}
	if !c.state.CompareAndSwap(from, stateActive) {
		return waitEnded // Shutdown closed it meanwhile
	}
	s.hook(c.rwc, http.StateActive)
	if !armed && !c.headBuffered() {
		c.armRead(s.o.ReadHeaderTimeout)
	}
	return waitReady
}

// headBuffered reports whether a whole request head is already in the
// read buffer, so that reading it cannot block and needs no header
// deadline (the usual case for a small request).
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// armRead arms the read deadline d from now (clears it when d is 0). A
// deadline already set less than d/8 before the asked one is kept: the
// timeout may then be up to an eighth shorter, and a busy keep-alive
// connection does not reset its timer for every request.
func (c *conn) armRead(d time.Duration) {
	if d <= 0 {
		if c.rdl.Load() != 0 {
			c.setReadDeadline(time.Time{})
		}
		return
	}
	t := time.Now().Add(d)
	if cur := c.rdl.Load(); cur != 0 {
		if diff := t.UnixNano() - cur; diff >= 0 && diff < int64(d/8) {
			return
		}
	}
	c.setReadDeadline(t)
}

// setReadDeadline sets the connection's read deadline, remembering it
// for armRead. Every read deadline on the connection is set through it.
func (c *conn) setReadDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	return c.rwc.SetReadDeadline(t)
}

// unixNano is t in nanoseconds since 1970, 0 for the zero time (no
// deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// readRequest reads and parses the next request.
func (c *conn) readRequest() (*http.Request, parsed, error) {
	head, err := c.readHead(c.s.maxHeader)
	if err != nil {
		return nil, parsed{}, err
	}
	req := new(http.Request)
	*req = c.tmpl
	if c.bigHead {
		c.fields, c.bigHead = fields{}, false
	}
	p, err := parseRequest(head, req, &c.fields)
	if err != nil {
		return nil, p, err
	}
	if len(c.head) > maxKeptHead {
		// Do not pin one huge head's buffers for the connection's life:
		// the head's now, its fields' once this request is done.
		c.head, c.bigHead = nil, true
	}
	c.body = nil
	req.Body = http.NoBody
	if p.length != 0 {
		c.body = newBody(c, req, p)
		req.Body = c.body
		c.canContinue.Store(p.expect)
		c.continued.Store(false)
	}
	return req, p, nil
}

// clean drops what the exchange that just ended still points to (the
// request, its field values, the answer's header values, which may hold a
// backend's whole answer head), so that none of it stays alive while the
// connection waits for its next request (holding its buffers, if the next
// request is already buffered).
func (c *conn) clean() {
	c.body = nil
	clear(c.w.header)
	c.w = response{c: c, header: c.w.header}
	clear(c.fields.h)
	clear(c.fields.vals)
}

// maxKeptHead is the largest head buffer kept for the next request.
const maxKeptHead = 16 << 10

// handle runs the handler for one request and completes the answer. It
// reports whether the connection may serve another request, and whether
// closing it should wait for the client's unread bytes (so that they do not
// turn the close into a reset that destroys the answer).
func (c *conn) handle(req *http.Request, p parsed) (keep, linger bool) {
	w := &c.w
	w.reset(req, p)
	if c.body != nil {
		c.setReadDeadline(time.Time{}) // body reads are the handler's to bound
	}
	ok := c.run(w, req)
	if w.hijacked {
		return false, false
	}
	b := c.body
	if b != nil {
		if b.reading.Load() {
			c.setReadDeadline(aLongTimeAgo) // a read left running must end now
		}
		b.Close()
	}
	if !ok {
		c.bw.Flush() // the answer breaks off where the handler left it
		return false, false
	}
	keep = w.finish()
	if b != nil && keep {
		if p.expect && !c.continued.Load() {
			return false, false // the client never sent the body it offered
		}
		c.armRead(c.s.o.ReadHeaderTimeout)
		keep = b.drain()
		return keep, !keep
	}
	return keep, b != nil
}

var aLongTimeAgo = time.Unix(1, 0)

// run calls the handler, turning a panic into a broken-off answer: logged
// unless it is http.ErrAbortHandler, the deliberate way to abort.
func (c *conn) run(w *response, req *http.Request) (ok bool) {
	defer func() {
		if e := recover(); e != nil {
			ok = false
			if e != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("http: panic serving %v: %v\n%s", req.RemoteAddr, e, buf)
			}
		}
	}()
	c.s.o.Handler.ServeHTTP(w, req)
	return true
}

// refuse answers a request the server could not accept, if the failure is
// one to answer (not a timeout or a closed connection). It reports whether
// the close should linger.
func (c *conn) refuse(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	text := strconv.Itoa(se.code) + " " + http.StatusText(se.code) + ": " + se.reason
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		se.code, http.StatusText(se.code), len(text), text)
	c.bw.Flush()
	return true
}

// writeContinue sends "100 Continue" unless the answer has begun.
func (c *conn) writeContinue() error {
	c.continueMu.Lock()
	defer c.continueMu.Unlock()
	if !c.canContinue.Load() {
		return nil
	}
	// canContinue turns false only once the bytes are out: until then an
	// answer being started (noContinue) waits for the lock.
	defer c.canContinue.Store(false)
	c.continued.Store(true)
	c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.bw.Flush()
}

// noContinue forgoes the 100 Continue: the answer is being written.
func (c *conn) noContinue() {
	if c.canContinue.Load() {
		c.continueMu.Lock()
		c.canContinue.Store(false)
		c.continueMu.Unlock()
	}
}

// hijacked is a connection handed over to a handler. It is still one of
// the server's open connections until the handler closes it: it holds its
// slot (MaxConns) until then, and its first Close reports StateClosed to
// the ConnState hook (see Options.ConnState).
type hijacked struct {
	net.Conn
	s      *Server
	closed sync.Once
}

// Close closes the connection; the first call also frees its slot and
// reports it closed.
func (h *hijacked) Close() error {
	err := h.Conn.Close()
	h.closed.Do(func() {
		h.s.release()
		h.s.hook(h.Conn, http.StateClosed)
	})
	return err
}

// hijack hands the connection over to the handler, returning the
// connection it is to use.
func (c *conn) hijack() net.Conn {
	// The read deadline running is the server's (a wait's, the header
	// timeout's), not the handler's: clear it, as net/http does.
	c.setReadDeadline(time.Time{})
	c.hijacked = true
	c.state.Store(stateClosed)
	c.s.forget(c)
	c.s.hook(c.rwc, http.StateHijacked)
	return &hijacked{Conn: c.rwc, s: c.s}
}

// lingerFor bounds how long a closing connection reads the client's unread
// bytes, and how many.
const (
	lingerFor   = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// close closes the connection. With linger, it first stops sending (FIN)
// and reads what the client still sends for a moment: closing a socket with
// unread input makes the kernel send a reset, which can destroy an answer
// (413, 431, 400) before the client reads it.
func (c *conn) close(linger bool) {
	if c.connBufs != nil {
		c.bw.Flush()
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok && linger {
		if cw.CloseWrite() == nil {
			c.raw.SetReadDeadline(time.Now().Add(lingerFor))
			io.Copy(io.Discard, io.LimitReader(c.raw, lingerBytes))
		}
	}
	c.rwc.Close()
	c.s.release()
	c.state.Store(stateClosed)
	c.ctx.cancel()
	c.s.forget(c)
	c.s.hook(c.rwc, http.StateClosed)
	c.putBufs()
}
