package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// recorder wraps the client's ResponseWriter for one request: it notes the
// status and body size for metrics and the access log, carries a
// forwarding error and the reason an answer was cut back from the Upstream
// to the Handler, and arms the send timeout before each write to the
// client. Recorders are pooled.
type recorder struct {
	w    http.ResponseWriter
	dl   writeDeadliner // w's, or nil
	fl   errFlusher     // w's, or nil
	send time.Duration  // the send timeout; 0 = none
	// lazy: HTTP/2, where each deadline set costs a message to the
	// connection's serve loop and a timer (golang.org/x/net/http2), so
	// the deadline is moved only when it has come within send of now
	// (see arm).
	lazy    bool
	until   time.Time // the deadline last set (lazy only)
	status  int
	bytes   int64
	err     error   // set by recordError
	fail    Failure // why the answer was not delivered whole
	started bool    // a final status went to the client; no retry is possible
	aborted bool    // the backend broke off mid-answer; the client connection must be aborted
	// cookies are Set-Cookie lines the handler adds to the final answer
	// ("" for none): the placement cookies (see Handler.forward).
	cookies [2]string
}

// writeDeadliner and errFlusher are what http.ResponseController looks for;
// the recorder resolves them once per request instead of allocating a
// controller per call.
type (
	writeDeadliner interface{ SetWriteDeadline(time.Time) error }
	errFlusher     interface{ FlushError() error }
)

// recorderPool recycles recorders. Nothing of the request outlives
// ServeHTTP in a recorder: the reverse proxy is done with the writer when it
// returns (an upgraded connection is hijacked, not written through it).
type recorderPool struct{ p sync.Pool }

func (rp *recorderPool) get(w http.ResponseWriter, r *http.Request, send time.Duration) *recorder {
	rec, _ := rp.p.Get().(*recorder)
	if rec == nil {
		rec = new(recorder)
	}
	rec.w, rec.send, rec.lazy = w, send, r.ProtoMajor == 2
	rec.dl, _ = w.(writeDeadliner)
	rec.fl, _ = w.(errFlusher)
	return rec
}

func (rp *recorderPool) put(rec *recorder) {
	*rec = recorder{}
	rp.p.Put(rec)
}

// arm starts the send timeout from now: each write to the client must make
// progress within it (nginx's send_timeout). The backend's time to answer
// is not the client's: the clock starts again before every write.
//
// On HTTP/2 (lazy) the deadline is set lazySlack of send further than
// now+send, and left alone while it is still at least send away: each
// pause is still allowed send, and at most send+send/lazySlack, and an
// answer written within send/lazySlack (most answers) sets it once
// instead of before each of its writes. (x/net's SetWriteDeadline sends
// a closure to the connection's serve loop, which wakes to reset a timer:
// three per request, a third of the serve loop's wakeups for a small
// answer; see BENCHMARKS.md, TLS, HTTP/2 throughput.)
func (rec *recorder) arm() {
	if rec.send <= 0 || rec.dl == nil {
		return
	}
	now := time.Now()
	if !rec.lazy {
		rec.dl.SetWriteDeadline(now.Add(rec.send))
		return
	}
	if !rec.until.IsZero() && rec.until.Sub(now) >= rec.send {
		return
	}
	rec.until = now.Add(rec.send + rec.send/lazySlack)
	rec.dl.SetWriteDeadline(rec.until)
}

// lazySlack: a lazy deadline is set send/lazySlack beyond now+send.
const lazySlack = 8

// pause is called while the backend has sent nothing for a watch tick
// (see pconn). On HTTP/2 a stream's write deadline runs on its own
// (x/net resets the stream when its timer fires, writing or not), so a
// backend silent mid-answer for longer than the send timeout would have
// the client's answer cut: the deadline is cleared here, once per
// silence, and the next write sets it again. Over HTTP/1.x the deadline
// matters only to writes, each armed first.
func (rec *recorder) pause() {
	if rec.lazy && !rec.until.IsZero() {
		rec.until = time.Time{}
		rec.dl.SetWriteDeadline(time.Time{})
	}
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	rec.arm()
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.w.WriteHeader(code) // informational: the final status is still to come
		return
	}
	if !rec.started {
		rec.start(code)
	}
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.started {
		rec.start(http.StatusOK)
	}
	rec.arm()
	n, err := rec.w.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// start notes the final answer's status and adds the handler's cookies
// to its header, which is about to be sent.
func (rec *recorder) start(code int) {
	rec.started = true
	rec.status = code
	for _, c := range rec.cookies {
		if c != "" {
			h := rec.w.Header()
			h["Set-Cookie"] = append(h["Set-Cookie"], c)
		}
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// FlushError sends what is buffered to the client (server-sent events and
// other streams, and an answer whose next bytes the backend makes wait).
func (rec *recorder) FlushError() error {
	if !rec.started {
		rec.start(http.StatusOK)
	}
	rec.arm()
	if rec.fl != nil {
		return rec.fl.FlushError()
	}
	return http.NewResponseController(rec.w).Flush()
}

// Hijack hands the connection over for a protocol upgrade (WebSocket).
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(rec.w).Hijack()
	if err == nil {
		rec.started = true
		rec.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// guardedBody stands in for a request body while it is forwarded: Close is
// left to the server (which closes the real body when the handler returns),
// so a transport that fails to connect and closes the body it was given
// does not spoil a retry, and read records whether any byte was consumed.
// It is not pooled: a transport's writer may still hold it briefly after
// the handler returns.
//
// With a timeout, each read must make progress within it (nginx's
// client_body_timeout): a client trickling its upload cannot hold the
// connection forever. The deadline is cleared at the end of a complete
// body, so that it cannot cut the connection while the backend answers.
//
// The handler may return while the writer still runs (a backend that
// answered before taking the whole upload): finish then stops the guard
// from touching the client connection's deadlines, which by then belong
// to the server's next read.
type guardedBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController // nil: no timeout
	timeout time.Duration

	mu   sync.Mutex // guards read, err and done; never held across a read
	read bool
	err  error // the client's body failed: timeout, cut off
	done bool  // the handler returned
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		return 0, errBodyAbandoned
	}
	g.read = true
	if g.ctl != nil {
		g.ctl.SetReadDeadline(time.Now().Add(g.timeout))
	}
	g.mu.Unlock()
	n, err := g.rc.Read(p)
	if err == nil {
		return n, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err != io.EOF:
		g.err = err
	case g.ctl != nil && !g.done:
		// Only a complete body clears it: after a failure the server's
		// drain of the rest must fail fast too.
		g.ctl.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (g *guardedBody) Close() error { return nil }

// state returns whether any of the body was read, and its failure.
func (g *guardedBody) state() (read bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.read, g.err
}

// finish marks the handler returned: later reads fail at once.
func (g *guardedBody) finish() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}

// errBodyAbandoned is read by a body writer still running after the
// handler returned.
var errBodyAbandoned = errors.New("request body abandoned: the answer is complete")
