package proxy

import (
	"bytes"
	"io"
	"net/http"
	"time"
)

// maxReplayBody is the largest request body (with a declared length) read
// in full before forwarding, so that it can be sent again to another backend
// if the first one fails mid-request. Larger and chunked bodies are streamed
// and can be retried only while none of their bytes has been read.
const maxReplayBody = 64 << 10

// requestBody is how one request's body is forwarded: buffered, streamed
// through a guard, or absent.
type requestBody struct {
	buf   []byte       // the whole body, when buffered
	guard *guardedBody // the streamed body, when not
}

// prepareBody applies the body size limit and buffers small bodies.
func (h *Handler) prepareBody(w http.ResponseWriter, r *http.Request) (requestBody, error) {
	if r.Body == nil || r.Body == http.NoBody || noH2Body(r) {
		return requestBody{}, nil
	}
	if h.o.MaxBodyBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
	}
	var rc *http.ResponseController
	if h.o.BodyTimeout > 0 {
		rc = http.NewResponseController(w)
	}
	if r.ContentLength > 0 && r.ContentLength <= maxReplayBody {
		buf := make([]byte, r.ContentLength)
		if rc != nil {
			rc.SetReadDeadline(time.Now().Add(h.o.BodyTimeout))
		}
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			// The deadline stays: the server's drain of the rest of the
			// body must fail fast too, and the connection close.
			return requestBody{}, err
		}
		if rc != nil {
			rc.SetReadDeadline(time.Time{})
		}
		return requestBody{buf: buf}, nil
	}
	g := &guardedBody{rc: r.Body, ctl: rc, timeout: h.o.BodyTimeout}
	r.Body = g
	return requestBody{guard: g}, nil
}

// rewind gives r a fresh reader over a buffered body before each attempt.
func (b *requestBody) rewind(r *http.Request) {
	if b.buf != nil {
		r.Body = io.NopCloser(bytes.NewReader(b.buf))
	}
}

// failed returns the error the client's body failed with (a timeout, a
// broken upload, the size limit), or nil.
func (b *requestBody) failed() error {
	if b.guard != nil {
		_, err := b.guard.state()
		return err
	}
	return nil
}

// replayable reports whether the body can be sent again.
func (b *requestBody) replayable() bool {
	if b.guard == nil {
		return true
	}
	read, _ := b.guard.state()
	return !read
}

// finish ends the body's use by the handler (see guardedBody.finish).
func (b *requestBody) finish() {
	if b.guard != nil {
		b.guard.finish()
	}
}

// noH2Body reports whether r is an HTTP/2 request without a body.
// golang.org/x/net/http2 gives every request a Body, also one whose
// HEADERS ended the stream; its ContentLength is then 0, as it is for a
// declared "content-length: 0" (DATA beyond a declared length resets the
// stream), and -1 for an open body of unknown length. Guarding such a
// body cost four allocations and a response controller per request.
func noH2Body(r *http.Request) bool { return r.ProtoMajor == 2 && r.ContentLength == 0 }
