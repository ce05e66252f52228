package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
)

// body is a request body read off the connection: a declared length or
// chunked. It is safe to Close while another goroutine reads (the proxy
// streams bodies to backends from a goroutine of its own): after Close,
// reads fail, so the connection's next request is never read twice.
type body struct {
	mu      sync.Mutex
	c       *conn
	r       io.Reader // the chunked decoder, or nil for a length
	left    int64     // bytes left of a declared length
	eof     bool      // the whole body was read
	err     error     // sticky read error
	closed  bool
	reading atomic.Bool // a read from the connection is under way
	req     *http.Request
	trailer []string
}

// errBodyClosed is returned by reads after the handler returned.
var errBodyClosed = errors.New("http: invalid Read on closed Body")

func newBody(c *conn, req *http.Request, p parsed) *body {
	b := &body{c: c, left: p.length, req: req, trailer: p.trailers}
	if p.chunked {
		b.r = httputil.NewChunkedReader(c.br)
		if len(p.trailers) > 0 {
			req.Trailer = make(http.Header, len(p.trailers))
			for _, k := range p.trailers {
				req.Trailer[k] = nil
			}
		}
	}
	return b
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, errBodyClosed
	case b.err != nil:
		return 0, b.err
	case b.eof:
		return 0, io.EOF
	}
	if b.c.canContinue.Load() {
		if err := b.c.writeContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	b.reading.Store(true)
	n, err := b.read(p)
	b.reading.Store(false)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *body) read(p []byte) (int, error) {
	if b.r == nil {
		if b.left <= 0 {
			b.eof = true
			return 0, io.EOF
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.c.br.Read(p)
		b.left -= int64(n)
		switch {
		case b.left == 0:
			b.eof = true
			return n, io.EOF
		case err == io.EOF:
			return n, io.ErrUnexpectedEOF
		}
		return n, err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		if terr := readTrailers(b.c.br, b.trailer, b.req.Trailer, b.c.s.maxHeader); terr != nil {
			return n, terr
		}
		b.eof = true
	}
	return n, err
}

// Close ends the handler's use of the body.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// undrainable reports whether what is left of the body is known to be
// more than drain would read: the answer then says the connection closes.
// A body being read right now is the handler's and is left to drain.
func (b *body) undrainable() bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	return !b.eof && (b.err != nil || (b.r == nil && b.left > maxDrain))
}

// maxDrain is the most of an unread request body the server reads and
// discards to keep the connection (net/http's figure).
const maxDrain = 256 << 10

// drain discards what is left of the body after the handler, and reports
// whether the connection can serve another request.
func (b *body) drain() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.eof:
		return true
	case b.err != nil:
		return false
	case b.r == nil && b.left > maxDrain:
		return false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(readerFunc(b.read), maxDrain+1))
	return err == nil && b.eof && n <= maxDrain
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
