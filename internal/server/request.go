package server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"fronttier/internal/httpx"
)

// statusError is a request the server refuses before any handler sees it:
// the status and a short reason, both sent to the client.
type statusError struct {
	code   int
	reason string
}

func (e *statusError) Error() string { return strconv.Itoa(e.code) + " " + e.reason }

func bad(reason string) error { return &statusError{http.StatusBadRequest, reason} }

var (
	errTooLarge      = &statusError{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
	errVersion       = &statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	errUnsupportedTE = &statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
	errExpectation   = &statusError{http.StatusExpectationFailed, "unsupported expectation"}
)

// maxLeadingEmpty is how many empty lines before a request line are skipped
// (RFC 9112 section 2.2: some clients send a CRLF after a POST body).
const maxLeadingEmpty = 4

// readHead reads one request head, from its request line to the empty line
// that ends it, into c.head (reused between requests). Lines may end in
// CRLF or a bare LF (RFC 9112 section 2.2); a bare CR elsewhere is refused
// by the parser. The head may be at most limit bytes.
func (c *conn) readHead(limit int) ([]byte, error) {
	buf := c.head[:0]
	lineStart, empty := 0, 0
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(buf)+len(frag) > limit {
			return nil, errTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := buf[lineStart:]
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			if lineStart == 0 { // an empty line before the request line
				if empty++; empty > maxLeadingEmpty {
					return nil, bad("empty request line")
				}
				buf = buf[:0]
				continue
			}
			c.head = buf
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// parsed is what the server itself needs to know about a request besides
// the http.Request it hands the handler.
type parsed struct {
	close    bool // the client asked to close after this exchange
	chunked  bool
	length   int64 // body length; -1 when chunked
	expect   bool  // Expect: 100-continue
	trailers []string
}

// parseRequest parses head into req (whose other fields the caller has
// set) and returns the framing. It refuses what could be read two ways
// (request smuggling): conflicting lengths, a length beside chunked, a
// transfer coding other than chunked, folded or malformed field lines.
func parseRequest(head []byte, req *http.Request, f *fields) (p parsed, err error) {
	s := string(head) // the only copy: every string below is a slice of it
	line, s := nextLine(s)
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !httpx.IsToken(method) || target == "" {
		return p, bad("malformed request line")
	}
	switch proto {
	case "HTTP/1.1":
		req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, 1
	case "HTTP/1.0":
		req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, 0
	default:
		if _, _, ok := http.ParseHTTPVersion(proto); ok {
			return p, errVersion
		}
		return p, bad("malformed HTTP version")
	}
	req.Method, req.RequestURI = method, target
	if req.URL, err = parseTarget(method, target); err != nil {
		return p, err
	}

	h, err := f.parse(s)
	if err != nil {
		return p, err
	}
	req.Header = h
	http11 := req.ProtoMinor == 1

	hosts := h["Host"]
	delete(h, "Host")
	switch {
	case len(hosts) > 1:
		return p, bad("too many Host headers")
	case len(hosts) == 0 && http11:
		return p, bad("missing required Host header")
	case len(hosts) == 1 && !validHost(hosts[0]):
		return p, bad("malformed Host header")
	}
	if req.URL.Host != "" {
		req.Host = req.URL.Host // absolute-form wins (RFC 9112 section 3.2.2)
	} else if len(hosts) == 1 {
		req.Host = hosts[0]
	}

	conn := h["Connection"]
	if http11 {
		p.close = httpx.HasToken(conn, "close")
	} else {
		p.close = !httpx.HasToken(conn, "keep-alive")
	}
	if p, err = framing(h, p, http11); err != nil {
		return p, err
	}
	if ex := h["Expect"]; len(ex) > 0 {
		if len(ex) > 1 || !httpx.EqualFold(ex[0], "100-continue") {
			return p, errExpectation
		}
		p.expect = http11 && p.length != 0
	}
	req.Close = p.close
	req.ContentLength = p.length
	if p.chunked {
		req.TransferEncoding = []string{"chunked"}
		if p.trailers, err = declaredTrailers(h["Trailer"]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// framing works out how the request body is delimited (RFC 9112 section
// 6.3) and refuses every ambiguous case.
func framing(h http.Header, p parsed, http11 bool) (parsed, error) {
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	if len(te) > 0 {
		switch {
		case !http11:
			return p, bad("Transfer-Encoding in an HTTP/1.0 request")
		case len(cl) > 0:
			return p, bad("both Transfer-Encoding and Content-Length")
		case len(te) > 1 || !httpx.EqualFold(te[0], "chunked"):
			return p, errUnsupportedTE
		}
		p.chunked, p.length = true, -1
		return p, nil
	}
	if len(cl) == 0 {
		return p, nil
	}
	n, ok := httpx.ParseLength(cl[0])
	if !ok {
		return p, bad("malformed Content-Length")
	}
	for _, v := range cl[1:] {
		if v != cl[0] {
			return p, bad("conflicting Content-Length")
		}
	}
	if len(cl) > 1 {
		h["Content-Length"] = cl[:1]
	}
	p.length = n
	return p, nil
}

// declaredTrailers returns the field names a Trailer header announces.
func declaredTrailers(vv []string) ([]string, error) {
	var names []string
	for _, v := range vv {
		for tok, rest := httpx.NextToken(v); tok != ""; tok, rest = httpx.NextToken(rest) {
			k := textproto.CanonicalMIMEHeaderKey(tok)
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length", "Host":
				return nil, bad("bad trailer key")
			}
			names = append(names, k)
		}
	}
	return names, nil
}

// fields is a connection's storage for request header fields, reused from
// one request to the next: the map is cleared, not reallocated, and the
// values share one backing array (as in net/http). A handler must not keep
// a request's Header after it returns (net/http's contract for the Request).
type fields struct {
	h    http.Header
	vals []string
}

// parse parses the field lines of a head (after the request line, through
// the empty line) into f's map and returns it.
func (f *fields) parse(s string) (http.Header, error) {
	n := strings.Count(s, "\n") // lines, including the final empty one
	if f.h == nil {
		f.h = make(http.Header, n)
	} else {
		clear(f.h)
	}
	if cap(f.vals) < n {
		f.vals = make([]string, n)
	}
	clear(f.vals) // no value of an earlier request stays reachable
	h, vals := f.h, f.vals[:n]
	for i := 0; ; i++ {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, bad("folded or indented header line")
		}
		name, v, ok := strings.Cut(line, ":")
		if !ok || !httpx.IsToken(name) {
			return nil, bad("malformed header line")
		}
		v = httpx.TrimOWS(v)
		if !httpx.ValidValue(v) {
			return nil, bad("invalid header value")
		}
		k := textproto.CanonicalMIMEHeaderKey(name)
		vals[i] = v
		if prev, ok := h[k]; ok {
			h[k] = append(prev, v)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
}

// nextLine returns s's first line without its line ending, and the rest.
// The head always ends in an empty line, so every line has an ending; a CR
// anywhere but before the LF is left in the line, where the field and value
// checks refuse it.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseTarget parses the request target (RFC 9112 section 3.2): origin-form
// ("/path?query", parsed here without allocating beyond the URL when the
// path needs no unescaping), asterisk-form (OPTIONS *), authority-form
// (CONNECT host:port) and absolute-form (http://host/path).
func parseTarget(method, target string) (*url.URL, error) {
	switch {
	case target == "*":
		return &url.URL{Path: "*"}, nil
	case method == http.MethodConnect && !strings.HasPrefix(target, "/"):
		u, err := url.Parse("http://" + target)
		if err != nil || u.Host == "" || !validHost(u.Host) || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, bad("malformed CONNECT target")
		}
		u.Scheme = ""
		return u, nil
	case target[0] == '/' && plainPath(target):
		path, query, _ := strings.Cut(target, "?")
		return &url.URL{Path: path, RawQuery: query}, nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, bad("malformed request target")
	}
	if u.Scheme != "" && (u.Host == "" || !validHost(u.Host) ||
		!(httpx.EqualFold(u.Scheme, "http") || httpx.EqualFold(u.Scheme, "https"))) {
		return nil, bad("malformed request target")
	}
	return u, nil
}

// plainPath reports whether an origin-form target's path has no escapes and
// no characters needing care, so that its URL is just path and query.
func plainPath(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '?' {
			break
		}
		if c == '%' || c == '#' || c <= ' ' || c >= 0x7f {
			return false
		}
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c == '#' || c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is plausible (RFC 3986 host
// characters and a port): the route table decides whether it is served.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:[]%@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// readTrailers reads the trailer section after a chunked body's last chunk
// (through its empty line), keeping the declared fields in t.
func readTrailers(br *bufio.Reader, declared []string, t http.Header, limit int) error {
	size := 0
	for {
		frag, err := br.ReadSlice('\n')
		if size += len(frag); size > limit || err == bufio.ErrBufferFull {
			return errTooLarge
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		line, _ := nextLine(string(frag))
		if line == "" {
			return nil
		}
		name, v, ok := strings.Cut(line, ":")
		if !ok || !httpx.IsToken(name) || !httpx.ValidValue(httpx.TrimOWS(v)) {
			return errors.New("malformed trailer line")
		}
		k := textproto.CanonicalMIMEHeaderKey(name)
		for _, d := range declared {
			if d == k {
				t[k] = append(t[k], httpx.TrimOWS(v))
				break
			}
		}
	}
}
