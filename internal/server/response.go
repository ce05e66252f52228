package server

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"fronttier/internal/httpx"
)

// response is the http.ResponseWriter of one request. One per connection,
// reset for each request: nothing of it outlives the handler (a hijacked
// connection is handed over whole).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	head   bool // HEAD request: no body is sent

	status     int  // final status, once WriteHeader was called
	sent       bool // the head is in the write buffer
	chunked    bool
	noBody     bool  // the status or method forbids a body
	length     int64 // declared Content-Length, -1 if none
	written    int64
	closeAfter bool // close the connection after this exchange
	hijacked   bool
	trailers   []string // declared trailer names, sent after a chunked body
}

func (w *response) reset(req *http.Request, p parsed) {
	clear(w.header)
	*w = response{c: w.c, header: w.header, req: req, head: req.Method == http.MethodHead,
		length: -1, closeAfter: p.close}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. An informational status
// (1xx but 101) is sent at once with the header as it stands; the final
// status is only recorded: the head goes out with the first body bytes, a
// flush or the end of the handler, so that an answer without a body can
// carry Content-Length: 0 instead of being chunked.
func (w *response) WriteHeader(code int) {
	if w.hijacked || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.c.noContinue()
		w.writeStatus(code)
		w.writeFields(false)
		w.c.bw.WriteString("\r\n")
		w.c.bw.Flush()
		return
	}
	w.status = code
}

// sendHead writes the final status line and fields into the write buffer,
// choosing the body's framing.
func (w *response) sendHead() {
	w.sent = true
	w.c.noContinue()
	code := w.status
	w.noBody = w.head || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if cl := w.header["Content-Length"]; len(cl) > 0 {
		if n, ok := httpx.ParseLength(cl[0]); ok {
			w.length = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if conn := w.header["Connection"]; len(conn) > 0 {
		if httpx.HasToken(conn, "close") {
			w.closeAfter = true
		}
	}
	if w.c.s.shuttingDown() || (w.c.body != nil && w.c.body.undrainable()) {
		w.closeAfter = true
	}
	http11 := w.req.ProtoMinor == 1
	switch {
	case w.noBody || w.length >= 0:
	case http11:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if w.chunked {
		if t := w.header["Trailer"]; len(t) > 0 {
			w.trailers, _ = declaredTrailers(t)
		}
	}
	w.writeStatus(code)
	w.writeFields(true)
	bw := w.c.bw
	if _, ok := w.header["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(w.c.s.date.get())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && http11:
		bw.WriteString("Connection: close\r\n")
	case !w.closeAfter && !http11:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

// writeStatus writes the status line.
func (w *response) writeStatus(code int) {
	bw := w.c.bw
	if code < len(statusLines) && statusLines[code] != "" {
		bw.WriteString(statusLines[code])
		return
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteString(" \r\n")
}

// statusLines are the status lines of the registered codes.
var statusLines = func() (s [600]string) {
	for code := 100; code < len(s); code++ {
		if text := http.StatusText(code); text != "" {
			s[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return s
}()

// writeFields writes the handler's header fields, but those the server
// owns (framing, connection) and trailers. Field names that are not tokens
// are dropped and line breaks in values replaced, so that no handler can
// split the response.
func (w *response) writeFields(final bool) {
	bw := w.c.bw
	for k, vv := range w.header {
		switch k {
		case "Transfer-Encoding", "Connection", "Trailer", "Keep-Alive":
			continue // the server's to write
		case "Content-Length":
			if !final || w.status < 200 || w.status == http.StatusNoContent {
				continue
			}
		}
		if w.isTrailer(k) || !httpx.IsToken(k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if final && len(w.trailers) > 0 {
		bw.WriteString("Trailer: ")
		bw.WriteString(strings.Join(w.trailers, ", "))
		bw.WriteString("\r\n")
	}
}

func (w *response) isTrailer(k string) bool {
	if strings.HasPrefix(k, http.TrailerPrefix) {
		return true
	}
	for _, t := range w.trailers {
		if t == k {
			return true
		}
	}
	return false
}

// writeValue writes a field value with any CR or LF replaced by a space.
func writeValue(bw *bufio.Writer, v string) {
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	n, err := w.admit(len(p))
	if n == 0 || w.noBody {
		return n, err
	}
	w.chunkHead(n)
	m, werr := w.c.bw.Write(p[:n])
	return w.wrote(m, werr, err)
}

// WriteString writes s without converting it to a byte slice.
func (w *response) WriteString(s string) (int, error) {
	n, err := w.admit(len(s))
	if n == 0 || w.noBody {
		return n, err
	}
	w.chunkHead(n)
	m, werr := w.c.bw.WriteString(s[:n])
	return w.wrote(m, werr, err)
}

// admit sends the head if it is due and returns how many of n body bytes
// may be written: all, those up to the declared length (with
// http.ErrContentLength), or none when the answer has no body. For HEAD it
// returns n: the body is dropped, reported as written.
func (w *response) admit(n int) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.sent {
		w.sendHead()
	}
	switch {
	case w.noBody && w.head:
		return n, nil
	case w.noBody:
		return 0, http.ErrBodyNotAllowed
	case w.length >= 0 && w.written+int64(n) > w.length:
		return int(w.length - w.written), http.ErrContentLength
	}
	return n, nil
}

// chunkHead starts a chunk of n bytes when the body is chunked.
func (w *response) chunkHead(n int) {
	if w.chunked {
		bw := w.c.bw
		bw.WriteString(strconv.FormatInt(int64(n), 16))
		bw.WriteString("\r\n")
	}
}

// wrote accounts for m body bytes written and ends the chunk.
func (w *response) wrote(m int, werr, err error) (int, error) {
	w.written += int64(m)
	if werr == nil && w.chunked {
		_, werr = w.c.bw.WriteString("\r\n")
	}
	if werr != nil {
		w.c.werr = werr
		return m, werr
	}
	return m, err
}

// Flush implements http.Flusher.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what is buffered to the client (http.ResponseController).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.sent {
		w.sendHead()
	}
	if err := w.c.bw.Flush(); err != nil {
		w.c.werr = err
		return err
	}
	return nil
}

// finish completes the answer after the handler returned: the head if it
// was never sent, the last chunk and trailers, then a flush. It reports
// whether the connection may serve another request.
func (w *response) finish() bool {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.sent {
		if !w.head && w.status >= 200 && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
			if _, ok := w.header["Content-Length"]; !ok {
				w.header["Content-Length"] = zeroLength
			}
		}
		w.sendHead()
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if !w.isTrailer(k) {
				continue
			}
			k = strings.TrimPrefix(k, http.TrailerPrefix)
			for _, v := range vv {
				bw.WriteString(k)
				bw.WriteString(": ")
				writeValue(bw, v)
				bw.WriteString("\r\n")
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		w.c.werr = err
	}
	short := w.length >= 0 && !w.noBody && w.written < w.length
	return !w.closeAfter && !short && w.c.werr == nil
}

var zeroLength = []string{"0"}

// SetReadDeadline lets http.ResponseController bound reads of the body.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.setReadDeadline(t) }

// SetWriteDeadline lets http.ResponseController bound writes of the
// answer. A deadline already set less than an eighth of the asked timeout
// before the asked one is kept (the proxy arms its send timeout for every
// answer; this spares a busy keep-alive connection a timer reset each).
func (w *response) SetWriteDeadline(t time.Time) error {
	c := w.c
	n := unixNano(t)
	if cur := c.wdl.Load(); cur != 0 && n != 0 {
		if diff := n - cur; diff >= 0 && diff < (n-time.Now().UnixNano())/8 {
			return nil
		}
	}
	c.wdl.Store(n)
	return c.rwc.SetWriteDeadline(t)
}

// EnableFullDuplex is a no-op: the body may always be read while the
// answer is written.
func (w *response) EnableFullDuplex() error { return nil }

// Hijack implements http.Hijacker: the connection and its buffers are
// handed over; the server forgets them.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.sent {
		if err := w.c.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	w.hijacked = true
	return w.c.hijack(), bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// dateCache formats the Date header once a second.
type dateCache struct{ p atomic.Pointer[dateValue] }

type dateValue struct {
	unix int64
	text string
}

func (d *dateCache) get() string {
	now := time.Now()
	if v := d.p.Load(); v != nil && v.unix == now.Unix() {
		return v.text
	}
	v := &dateValue{now.Unix(), now.UTC().Format(http.TimeFormat)}
	d.p.Store(v)
	return v.text
}
