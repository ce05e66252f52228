package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/server"
)

// This file is the harness of the differential test (differential_test.go)
// and of FuzzResponse: scripted raw backends, the two proxies under
// comparison, a raw client, and the normalised form answers are compared
// in.

// Timeouts shared by both proxies, and the client's patience.
const (
	diffHeaderTimeout = time.Second     // response-header timeout of both proxies
	diffReadTimeout   = time.Second     // fronttier's per-pause read timeout
	diffAnswerWait    = 5 * time.Second // the client's deadline for one whole answer
	diffCloseWait     = 300 * time.Millisecond
)

// rawStep is one move of a scripted backend: write bytes, pause, or close.
type rawStep struct {
	write string
	pause time.Duration
	close bool
}

func rawSend(s string) rawStep        { return rawStep{write: s} }
func rawWait(d time.Duration) rawStep { return rawStep{pause: d} }
func rawHangUp() rawStep              { return rawStep{close: true} }

// seedOf returns the bytes a scripted answer writes.
func seedOf(steps []rawStep) (b []byte) {
	for _, s := range steps {
		b = append(b, s.write...)
	}
	return b
}

// rawBackend is a scripted backend: a listener on 127.0.0.1:0 running a
// script on every connection it accepts. Scripts read requests with
// readRequest, which numbers them across connections.
type rawBackend struct {
	addr   string
	done   chan struct{} // closed at cleanup: pauses end, scripts return
	events chan string   // what scripts report (see await)

	mu    sync.Mutex // guards the fields below
	conns []net.Conn
	reqs  int   // requests read so far
	on    []int // on[i] is the connection index request i+1 arrived on
	// givenUp counts pauses during which the proxy closed the connection:
	// its own timeout fired while the backend was still silent.
	givenUp int
	// marks are when a script reached a named point (see mark).
	marks map[string]time.Time
}

// bconn is one backend connection as a script sees it.
type bconn struct {
	b     *rawBackend
	c     net.Conn
	br    *bufio.Reader
	index int // the connection's index among those the backend accepted
}

// newRawBackend starts a backend running script on each connection.
func newRawBackend(t testing.TB, script func(*bconn)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String(), done: make(chan struct{}), events: make(chan string, 64)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(b.done)
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			index := len(b.conns)
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				script(&bconn{b: b, c: c, br: bufio.NewReader(c), index: index})
			}()
		}
	}()
	return b
}

// readRequest reads the next request head (the body is left unread) and
// returns the request with its number, counted from 1 across connections.
// It gives up when the peer closes (reporting "conn N closed"), after
// twice diffAnswerWait of silence, or at cleanup. Twice: a backend closes
// its connection only after the client has given up on an answer, so a
// proxy that waited for the backend's close to end an answer shows as
// "hung", whatever the machine's speed.
func (c *bconn) readRequest() (*http.Request, int, error) {
	c.c.SetReadDeadline(time.Now().Add(2 * diffAnswerWait))
	req, err := http.ReadRequest(c.br)
	if err != nil {
		if errors.Is(err, io.EOF) || isReset(err) {
			c.report(fmt.Sprintf("conn %d closed", c.index))
		}
		return nil, 0, err
	}
	c.b.mu.Lock()
	c.b.reqs++
	n := c.b.reqs
	c.b.on = append(c.b.on, c.index)
	c.b.mu.Unlock()
	return req, n, nil
}

// run plays steps; it reports false once the connection is closed (by a
// step, a failed write or cleanup).
func (c *bconn) run(steps []rawStep) bool {
	for _, s := range steps {
		switch {
		case s.close:
			c.c.Close()
			return false
		case s.pause > 0:
			if !c.pause(s.pause) {
				return false
			}
		default:
			c.c.SetWriteDeadline(time.Now().Add(diffAnswerWait))
			if _, err := io.WriteString(c.c, s.write); err != nil {
				return false
			}
		}
	}
	return true
}

// pause waits d, the emulated slowness of a server; false at cleanup.
// It watches the connection meanwhile (a peek, which consumes nothing):
// when the proxy closes it before d is over, the pause counts in givenUp,
// which tells a proxy's own timeout from the backend's hang-up without
// reading a clock.
func (c *bconn) pause(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	peer := make(chan error, 1)
	go func() {
		_, err := c.br.Peek(1)
		peer <- err
	}()
	stopPeek := func() {
		c.c.SetReadDeadline(time.Now()) // wakes the peek
		<-peer
	}
	select {
	case <-tm.C:
		stopPeek()
		return true
	case <-c.b.done:
		stopPeek()
		return false
	case err := <-peer:
		if errors.Is(err, io.EOF) || isReset(err) {
			c.b.mu.Lock()
			c.b.givenUp++
			c.b.mu.Unlock()
			c.report(fmt.Sprintf("conn %d given up", c.index))
		}
	}
	select {
	case <-tm.C:
		return true
	case <-c.b.done:
		return false
	}
}

// mark notes that the script reached point now (the first time only).
func (c *bconn) mark(point string) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.marks == nil {
		c.b.marks = map[string]time.Time{}
	}
	if _, ok := c.b.marks[point]; !ok {
		c.b.marks[point] = time.Now()
	}
}

// marked returns when a script first reached point; false if none did.
func (b *rawBackend) marked(point string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.marks[point]
	return at, ok
}

// gaveUp reports how many of the backend's pauses the proxy cut short by
// closing the connection.
func (b *rawBackend) gaveUp() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.givenUp
}

// report tells the test that something happened (see await).
func (c *bconn) report(event string) {
	select {
	case c.b.events <- event:
	default:
	}
}

// await waits up to d for the event a script reports; false if it did not
// come.
func (b *rawBackend) await(event string, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		select {
		case e := <-b.events:
			if e == event {
				return true
			}
		case <-tm.C:
			return false
		}
	}
}

// arrivals returns the connection index each request arrived on.
func (b *rawBackend) arrivals() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.on)
}

// scriptedAnswer is the usual script: for each request on the connection, play
// steps; a request body is left unread.
func scriptedAnswer(steps []rawStep) func(*bconn) {
	return func(c *bconn) {
		for {
			if _, _, err := c.readRequest(); err != nil {
				return
			}
			if !c.run(steps) {
				return
			}
		}
	}
}

// counted answers each request with its number: "answer N".
func (c *bconn) counted(n int) bool {
	body := fmt.Sprintf("answer %d", n)
	return c.run([]rawStep{rawSend(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body))})
}

// panicLog fails the test when a server logs a panic of its handler.
type panicLog struct{ t testing.TB }

func (p panicLog) Write(b []byte) (int, error) {
	if strings.Contains(string(b), "panic") {
		p.t.Errorf("server log: %s", b)
	}
	return len(b), nil
}

// diffUpstreamOptions are fronttier's upstream options in the comparison.
func diffUpstreamOptions() UpstreamOptions {
	return UpstreamOptions{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: diffHeaderTimeout, ReadTimeout: diffReadTimeout}
}

// startFronttier serves a proxy Handler for example.com -> backend on
// internal/server, as the app does, and returns its address. The server's
// error log goes to errLog.
func startFronttier(t testing.TB, backendAddr string, errLog io.Writer) string {
	t.Helper()
	s := newSetup(t, diffUpstreamOptions(), Options{}, [2]string{"b", backendAddr})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Handler: s.h, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(errLog, "", 0)})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startReference serves httputil.ReverseProxy to backend on net/http's
// server, with the timeouts and head limit fronttier has.
func startReference(t testing.TB, backendAddr string) string {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: backendAddr}
	tr := &http.Transport{
		DialContext:            (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout:  diffHeaderTimeout,
		MaxResponseHeaderBytes: 1 << 20, // fronttier's default response head limit
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true, // the client's Accept-Encoding, not the Transport's
	}
	t.Cleanup(tr.CloseIdleConnections)
	quiet := log.New(io.Discard, "", 0)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: tr,
		ErrorLog:  quiet,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second, ErrorLog: quiet}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// clientResult is what a client saw of one answer, raw.
type clientResult struct {
	interim []*http.Response // 1xx answers before the final one
	resp    *http.Response   // the final answer's head; nil if none came
	body    []byte
	end     string // how the body ended: "complete", "cut" (closed early), "hung" (open, incomplete)
	conn    string // the connection after the answer: "open", "closed", or "extra bytes ..."
	err     string // no final head: why
	headAt  time.Duration
	doneAt  time.Duration
	done    time.Time // when the body ended, to order it among the backend's moves
}

// clientRequest is a raw request and the body bytes to upload after it.
type clientRequest struct {
	head   string
	upload int // bytes of body to send after head (its Content-Length is in head)
}

func getReq(path string) clientRequest {
	return clientRequest{head: "GET " + path + " HTTP/1.1\r\nHost: example.com\r\n\r\n"}
}

// rawRoundTrip sends req on a new connection to addr and reads the answer.
// It may run on a goroutine of its own.
func rawRoundTrip(addr string, req clientRequest) clientResult {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return clientResult{err: err.Error()}
	}
	defer c.Close()
	return exchangeOn(c, bufio.NewReader(c), req, diffCloseWait)
}

// exchangeOn sends req on c and reads the answer through br. The request
// is written from a goroutine, so that an answer that comes before the
// upload ends is read at once. After a complete answer that leaves the
// connection open, it waits up to closeWait for a close or stray bytes
// (none: conn is "unknown").
func exchangeOn(c net.Conn, br *bufio.Reader, req clientRequest, closeWait time.Duration) (res clientResult) {
	parsed, err := http.ReadRequest(bufio.NewReader(strings.NewReader(req.head)))
	if err != nil {
		return clientResult{err: fmt.Sprintf("bad test request %q: %v", req.head, err)}
	}
	start := time.Now()
	c.SetDeadline(start.Add(diffAnswerWait))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(c, req.head); err != nil {
			return
		}
		chunk := make([]byte, 32<<10)
		for left := req.upload; left > 0; left -= len(chunk) {
			if _, err := c.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	}()
	defer func() {
		if req.upload > 0 {
			c.Close() // ends an upload the proxy no longer reads
		}
		<-wrote
	}()
	for {
		resp, err := http.ReadResponse(br, parsed)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				res.err = "no answer (connection left open)"
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isReset(err):
				res.err = errClosedEarly
			default:
				res.err = "malformed answer: " + err.Error()
			}
			return res
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			res.interim = append(res.interim, resp)
			continue
		}
		res.resp, res.headAt = resp, time.Since(start)
		break
	}
	res.body, err = io.ReadAll(res.resp.Body)
	res.done = time.Now()
	res.doneAt = res.done.Sub(start)
	switch {
	case err == nil:
		res.end = "complete"
	case errors.Is(err, os.ErrDeadlineExceeded):
		res.end, res.conn = "hung", "open"
		return res
	default:
		res.end, res.conn = "cut", "closed"
		return res
	}
	if res.resp.ContentLength < 0 && res.resp.TransferEncoding == nil && bodyAllowed(res.resp) {
		res.conn = "closed" // the body ended with the connection
		return res
	}
	if closeWait <= 0 {
		res.conn = "unknown"
		return res
	}
	c.SetReadDeadline(time.Now().Add(closeWait))
	switch b, err := br.Peek(1); {
	case len(b) > 0:
		n := br.Buffered()
		b, _ = br.Peek(min(n, 80))
		res.conn = fmt.Sprintf("extra bytes %q", b)
	case errors.Is(err, os.ErrDeadlineExceeded):
		res.conn = "open"
	default:
		res.conn = "closed"
	}
	return res
}

// errClosedEarly is clientResult.err when the connection closed before a
// complete head.
const errClosedEarly = "no answer (connection closed)"

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read" && !errors.Is(err, os.ErrDeadlineExceeded)
}

func bodyAllowed(r *http.Response) bool {
	return r.Request.Method != http.MethodHead && r.StatusCode >= 200 &&
		r.StatusCode != http.StatusNoContent && r.StatusCode != http.StatusNotModified
}

// normalized renders a clientResult for comparison, leaving out what two correct
// proxies may legitimately do differently: Date and Server, field order
// and name case, chunked versus length framing of the same body, the
// proxies' own error answers (502, 503, 504: only the status is kept), a
// 304's Content-Length (RFC 9110 8.6 lets a server send or omit it), the
// fields a proxy writes itself on the connection (Connection, Keep-Alive,
// Transfer-Encoding, Trailer: the trailers themselves are compared), and
// how a broken answer breaks: an answer cut mid-body and a connection
// closed before any answer both tell the client it has no complete answer
// (net/http's server drops what it buffered when a handler aborts).
// Without withConn, the state of the connection after the answer is left
// out too.
func (r clientResult) normalized(withConn bool) string {
	var b strings.Builder
	for _, in := range r.interim {
		fmt.Fprintf(&b, "interim %d %s\n", in.StatusCode, fieldsText(in.Header, nil))
	}
	if r.resp == nil && r.err == errClosedEarly || r.end == "cut" {
		b.WriteString("broken: the connection closed before a complete answer\n")
		return b.String()
	}
	if r.resp == nil {
		fmt.Fprintf(&b, "%s\n", r.err)
		return b.String()
	}
	code := r.resp.StatusCode
	fmt.Fprintf(&b, "status %d\n", code)
	if code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
		return b.String()
	}
	drop := []string{"Content-Length"}
	framing := "delimited"
	switch {
	case !bodyAllowed(r.resp):
		framing = "none"
		if code != http.StatusNotModified {
			drop = nil // HEAD and 204: Content-Length passes (or not) as sent
		}
	case r.resp.ContentLength < 0 && r.resp.TransferEncoding == nil:
		framing = "by close"
	}
	fmt.Fprintf(&b, "framing %s\nheader %s\n", framing, fieldsText(r.resp.Header, drop))
	fmt.Fprintf(&b, "body %s\nend %s\n", abridged(string(r.body), 200), r.end)
	if len(r.resp.Trailer) > 0 {
		fmt.Fprintf(&b, "trailer %s\n", fieldsText(r.resp.Trailer, nil))
	}
	if withConn {
		fmt.Fprintf(&b, "conn %s\n", r.conn)
	}
	return b.String()
}

// fieldsText renders h sorted, without the connection's own fields and drop.
func fieldsText(h http.Header, drop []string) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		switch k {
		case "Date", "Server", "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer":
			continue
		}
		if slices.Contains(drop, k) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", k, abridged(strings.Join(h[k], " | "), 100))
	}
	b.WriteString("}")
	return b.String()
}

// abridged quotes s, or its start with its length and a hash when it is
// longer than n: long values still compare whole.
func abridged(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	h := fnv.New64a()
	io.WriteString(h, s)
	return fmt.Sprintf("%q... (%d bytes, fnv %x)", s[:n/2], len(s), h.Sum64())
}

// raw renders a clientResult whole, for the log of a failed case.
func (r clientResult) raw() string {
	var b strings.Builder
	for _, in := range r.interim {
		fmt.Fprintf(&b, "interim %d %v\n", in.StatusCode, in.Header)
	}
	if r.resp == nil {
		fmt.Fprintf(&b, "%s\n", r.err)
		return b.String()
	}
	fmt.Fprintf(&b, "status %d, length %d, transfer-encoding %v, header after %v\n", r.resp.StatusCode,
		r.resp.ContentLength, r.resp.TransferEncoding, r.headAt.Round(time.Millisecond))
	for k, vv := range r.resp.Header {
		fmt.Fprintf(&b, "  %s: %s\n", k, abridged(strings.Join(vv, " | "), 100))
	}
	fmt.Fprintf(&b, "body %s, %s after %v, trailer %v, conn %s\n", abridged(string(r.body), 200), r.end,
		r.doneAt.Round(time.Millisecond), r.resp.Trailer, r.conn)
	return b.String()
}
