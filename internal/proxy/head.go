package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"

	"fronttier/internal/httpx"
)

// respHead is a backend's response head, parsed for forwarding.
type respHead struct {
	status int
	// header holds the end-to-end fields (hop-by-hop ones and those the
	// Connection field lists are dropped). It is the client's header map.
	header http.Header
	// length is the body's declared length, -1 when chunked or delimited
	// by the connection's close, 0 when there is no body.
	length  int64
	chunked bool
	// close says the connection cannot carry another exchange.
	close bool
	// upgrade is the protocol a 101 switches to.
	upgrade string
	// trailer is the Trailer field: the trailer names announced.
	trailer string
	// contentType, kept to recognise event streams.
	contentType string

	lr lengthReader // the body's reader when it has a length
}

// field is one raw header line: key canonical, value as offsets into the
// head's value buffer.
type field struct {
	key        string
	start, end int
}

// headParser parses response heads. It keeps its scratch space, and the
// head it hands out, between exchanges of one connection: a head is valid
// until the next read. The values it puts in header maps are fresh.
type headParser struct {
	max    int // the head's size limit, status line and fields
	fields []field
	vals   []byte
	long   []byte // a line longer than the read buffer, assembled
	head   respHead
}

// defaultMaxHead is a response head's size limit unless set.
const defaultMaxHead = 1 << 20

// maxKeptLine is the largest long-line buffer a connection keeps.
const maxKeptLine = 16 << 10

var (
	errHeadTooLarge = errors.New("backend response head too large")
	errMalformed    = errors.New("malformed backend response")
)

// read parses the next response head from br into h (the client's header
// map). method is the request's, for HEAD's body rules.
func (p *headParser) read(br *bufio.Reader, method string, h http.Header) (*respHead, error) {
	if p.max <= 0 {
		p.max = defaultMaxHead
	}
	size := 0
	line, err := p.readLine(br, &size)
	if err != nil {
		return nil, err
	}
	rh := &p.head
	*rh = respHead{header: h}
	http10, err := parseStatus(line, rh)
	if err != nil {
		return nil, err
	}
	p.fields, p.vals = p.fields[:0], p.vals[:0]
	for {
		line, err := p.readLine(br, &size)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if err := p.addField(line); err != nil {
			return nil, err
		}
	}
	vals := string(p.vals) // one allocation for every value
	return rh, p.finish(rh, vals, method, http10)
}

// readLine returns the next line without its CRLF (or LF), adding its
// length to *size and failing once that passes the head limit. A line
// longer than br's buffer is assembled in p.long. The slice is valid until
// the next read from br or the next long line.
func (p *headParser) readLine(br *bufio.Reader, size *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		p.long = append(p.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if *size+len(p.long) > p.max {
				return nil, errHeadTooLarge
			}
			line, err = br.ReadSlice('\n')
			p.long = append(p.long, line...)
		}
		line = p.long
		if cap(p.long) > maxKeptLine {
			p.long = nil // do not pin one huge line for the connection's life
		}
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *size += len(line); *size > p.max {
		return nil, errHeadTooLarge
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatus parses "HTTP/1.1 200 OK" and reports whether it is HTTP/1.0.
func parseStatus(line []byte, rh *respHead) (http10 bool, err error) {
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return false, fmt.Errorf("%w: version %q", errMalformed, line[:8])
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return false, fmt.Errorf("%w: status %d", errMalformed, code)
	}
	rh.status = code
	return http10, nil
}

// addField records one "Key: value" line.
func (p *headParser) addField(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return fmt.Errorf("%w: header line %q", errMalformed, line)
	}
	key := line[:colon]
	// No white space before the colon, no folded lines (RFC 9112 section
	// 5): both are smuggling vectors.
	if !httpx.IsToken(key) {
		return fmt.Errorf("%w: header name %q", errMalformed, key)
	}
	val := httpx.TrimOWS(line[colon+1:])
	if !httpx.ValidValue(val) {
		return fmt.Errorf("%w: control character in header %q", errMalformed, key)
	}
	start := len(p.vals)
	p.vals = append(p.vals, val...)
	p.fields = append(p.fields, field{key: canonicalKey(key), start: start, end: len(p.vals)})
	return nil
}

// finish applies the fields: framing, connection handling, and the
// end-to-end ones into rh.header.
func (p *headParser) finish(rh *respHead, vals, method string, http10 bool) error {
	var conn []string
	keepAlive := false
	lengthSeen, teSeen := false, false
	rh.length = -1
	te := ""
	for _, f := range p.fields {
		v := vals[f.start:f.end]
		switch f.key {
		case "Connection":
			for tok, rest := httpx.NextToken(v); tok != ""; tok, rest = httpx.NextToken(rest) {
				switch {
				case httpx.EqualFold(tok, "close"):
					rh.close = true
				case httpx.EqualFold(tok, "keep-alive"):
					keepAlive = true
				}
				conn = append(conn, textproto.CanonicalMIMEHeaderKey(tok))
			}
		case "Content-Length":
			n, ok := httpx.ParseLength(v)
			if !ok || (lengthSeen && n != rh.length) {
				return fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
			rh.length, lengthSeen = n, true
		case "Transfer-Encoding":
			if teSeen {
				return fmt.Errorf("%w: repeated Transfer-Encoding", errMalformed)
			}
			te, teSeen = v, true
		case "Upgrade":
			rh.upgrade = v
		case "Trailer":
			rh.trailer = v
		case "Content-Type":
			rh.contentType = v
		}
	}
	if teSeen && http10 {
		// RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
		// faulty framing; Go reads it to the close, we would read it as
		// chunked. Either reading may be wrong: refuse it.
		return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 answer", errMalformed)
	}
	if teSeen {
		if !httpx.EqualFold(te, "chunked") {
			return fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, te)
		}
		if lengthSeen {
			// RFC 9112 6.3 lets a recipient treat both as an error; an
			// answer framed two ways is a smuggling or splitting attempt
			// (nginx refuses it too).
			return fmt.Errorf("%w: both Transfer-Encoding and Content-Length", errMalformed)
		}
		rh.chunked = true
	}
	if http10 && !keepAlive {
		rh.close = true
	}
	switch {
	case method == http.MethodHead, rh.status < 200, rh.status == http.StatusNoContent, rh.status == http.StatusNotModified:
		rh.length, rh.chunked = 0, false
	case rh.length < 0 && !rh.chunked:
		rh.close = true // the body ends with the connection
	}
	if len(p.fields) == 0 {
		return nil
	}
	slots := make([]string, len(p.fields)) // one allocation for every value slot
	for i, f := range p.fields {
		if hopHeaders[f.key] || (conn != nil && listed(conn, f.key)) {
			continue
		}
		slots[i] = vals[f.start:f.end]
		if prev, ok := rh.header[f.key]; ok {
			rh.header[f.key] = append(prev, slots[i])
		} else {
			rh.header[f.key] = slots[i : i+1 : i+1]
		}
	}
	return nil
}

// readTrailer reads the trailer section after a chunked body's last chunk
// into h, keeping the fields the head announced.
func (p *headParser) readTrailer(br *bufio.Reader, announced string, h http.Header) error {
	if p.max <= 0 {
		p.max = defaultMaxHead
	}
	size := 0
	for {
		line, err := p.readLine(br, &size)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("%w: trailer line %q", errMalformed, line)
		}
		key := canonicalKey(line[:colon])
		for name, rest := httpx.NextToken(announced); name != ""; name, rest = httpx.NextToken(rest) {
			if textproto.CanonicalMIMEHeaderKey(name) == key {
				h[key] = append(h[key], string(bytes.TrimSpace(line[colon+1:])))
				break
			}
		}
	}
}

// body returns the reader of rh's body on br.
func (rh *respHead) body(br *bufio.Reader) io.Reader {
	switch {
	case rh.chunked:
		return httputil.NewChunkedReader(br)
	case rh.length >= 0:
		rh.lr = lengthReader{r: br, n: rh.length}
		return &rh.lr
	default:
		return br // until the backend closes the connection
	}
}

// lengthReader reads exactly n bytes: a backend that closes early is an
// error, not a short body.
type lengthReader struct {
	r io.Reader
	n int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if err == io.EOF && l.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if l.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// canonicalKey returns the canonical form of a header name, without
// allocating for the common ones.
func canonicalKey(b []byte) string {
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// commonKeys maps the usual spellings of common response headers to their
// canonical form.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
		"Content-Range", "Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires",
		"Keep-Alive", "Last-Modified", "Link", "Location", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade", "Vary", "Via",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id",
		"Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Retry-After",
	} {
		m[k] = k
		m[toLowerASCII(k)] = k
	}
	return m
}()

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
