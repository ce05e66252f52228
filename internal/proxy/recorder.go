package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// recorder wraps the client's ResponseWriter for one request: it notes the
// status and body size for metrics and the access log, and carries a
// forwarding error back from the Upstream to the Handler. It also guards
// the request body so a request that failed before its body was read can be
// sent again. Recorders are pooled.
type recorder struct {
	w       http.ResponseWriter
	status  int
	bytes   int64
	err     error // set by recordError
	started bool  // a final status went to the client; no retry is possible
	aborted bool  // the backend broke off mid-answer; the client connection must be aborted
}

// recorderPool recycles recorders. Nothing of the request outlives
// ServeHTTP in a recorder: the reverse proxy is done with the writer when it
// returns (an upgraded connection is hijacked, not written through it).
type recorderPool struct{ p sync.Pool }

func (rp *recorderPool) get(w http.ResponseWriter) *recorder {
	rec, _ := rp.p.Get().(*recorder)
	if rec == nil {
		rec = new(recorder)
	}
	rec.w = w
	return rec
}

func (rp *recorderPool) put(rec *recorder) {
	*rec = recorder{}
	rp.p.Put(rec)
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.w.WriteHeader(code) // informational: the final status is still to come
		return
	}
	if !rec.started {
		rec.started = true
		rec.status = code
	}
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.started {
		rec.started = true
		rec.status = http.StatusOK
	}
	n, err := rec.w.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// FlushError flushes buffered data to the client (server-sent events and
// other streams).
func (rec *recorder) FlushError() error {
	if !rec.started {
		rec.started = true
		rec.status = http.StatusOK
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
type guardedBody struct {
	rc   io.ReadCloser
	read bool
	err  error // the client's body failed: timeout, cut off

	ctl     *http.ResponseController // nil: no timeout
	timeout time.Duration
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.read = true
	if g.ctl != nil {
		g.ctl.SetReadDeadline(time.Now().Add(g.timeout))
	}
	n, err := g.rc.Read(p)
	if err != nil && err != io.EOF {
		g.err = err
	}
	if err == io.EOF && g.ctl != nil {
		// Only a complete body clears it: after a failure the server's
		// drain of the rest must fail fast too.
		g.ctl.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (g *guardedBody) Close() error { return nil }
