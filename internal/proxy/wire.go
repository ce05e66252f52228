package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

	"fronttier/internal/httpx"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1 (and the
// common non-standard ones): they describe one connection and are never
// forwarded. The proxy writes its own framing and forwarding headers.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// notForwarded are the request headers writeHead does not copy: the
// hop-by-hop ones, and those the proxy writes itself. One set, so that each
// request header costs one lookup.
var notForwarded = func() map[string]bool {
	m := map[string]bool{
		"Content-Length":    true,
		"Expect":            true, // the server already answered 100-continue
		"X-Forwarded-For":   true,
		"X-Forwarded-Host":  true,
		"X-Forwarded-Proto": true,
		"Forwarded":         true,
		"X-Real-Ip":         true,
		"Host":              true,
	}
	for k := range hopHeaders {
		m[k] = true
	}
	return m
}()

// connectionTokens returns the header names a Connection header lists
// (they are hop-by-hop too), or nil.
func connectionTokens(h http.Header) []string {
	vv := h["Connection"]
	if len(vv) == 0 {
		return nil
	}
	var names []string
	for _, v := range vv {
		for _, f := range httpx.SplitTokens(v) {
			names = append(names, http.CanonicalHeaderKey(f))
		}
	}
	return names
}

func listed(names []string, k string) bool {
	for _, n := range names {
		if n == k {
			return true
		}
	}
	return false
}

// upgradeType returns the protocol r asks to upgrade to ("websocket"), or
// "" when it is not an upgrade request.
func upgradeType(h http.Header) string {
	if !httpx.HasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// writeHead writes r's request line and headers for the backend: the
// client's end-to-end headers, the original Host, X-Forwarded-For (the
// client's address only: a client-sent value is not trusted, unless the
// client is a trusted proxy, whose list is extended), X-Forwarded-Host,
// X-Forwarded-Proto and X-Real-IP (a trusted proxy's are kept, anyone
// else's replaced), Forwarded (a trusted proxy's kept as sent, anyone
// else's removed: the proxy does not originate it, X-Forwarded-* say the
// same), and the body framing.
func writeHead(bw *bufio.Writer, r *http.Request, trusted bool) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if uri := r.RequestURI; strings.HasPrefix(uri, "/") || uri == "*" {
		bw.WriteString(uri)
	} else {
		bw.WriteString(r.URL.RequestURI()) // absolute-form: send origin-form
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")

	conn := connectionTokens(r.Header)
	for k, vv := range r.Header {
		if notForwarded[k] || (conn != nil && listed(conn, k)) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && httpx.HasToken(te, "trailers") {
		writeField(bw, "Te", "trailers")
	}
	if up := upgradeType(r.Header); up != "" {
		writeField(bw, "Connection", "Upgrade")
		writeField(bw, "Upgrade", up)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
			writeField(bw, "X-Forwarded-For", strings.Join(prior, ", ")+", "+ip)
		} else {
			writeField(bw, "X-Forwarded-For", ip)
		}
		if v := r.Header["X-Real-Ip"]; trusted && len(v) > 0 {
			writeField(bw, "X-Real-Ip", v[0])
		} else {
			writeField(bw, "X-Real-Ip", ip)
		}
	}
	if trusted {
		for _, v := range r.Header["Forwarded"] {
			writeField(bw, "Forwarded", v)
		}
	}
	if v := r.Header["X-Forwarded-Host"]; trusted && len(v) > 0 {
		writeField(bw, "X-Forwarded-Host", v[0])
	} else {
		writeField(bw, "X-Forwarded-Host", r.Host)
	}
	switch v := r.Header["X-Forwarded-Proto"]; {
	case trusted && len(v) > 0:
		writeField(bw, "X-Forwarded-Proto", v[0])
	case r.TLS != nil:
		writeField(bw, "X-Forwarded-Proto", "https")
	default:
		writeField(bw, "X-Forwarded-Proto", "http")
	}
	switch {
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		writeField(bw, "Transfer-Encoding", "chunked")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		writeField(bw, "Content-Length", "0")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody writes r's body with the framing writeHead announced, then
// flushes.
func (u *Upstream) writeBody(bw *bufio.Writer, r *http.Request) error {
	buf := u.bufs.get()
	defer u.bufs.put(buf)
	if r.ContentLength > 0 {
		n, err := io.CopyBuffer(bw, io.LimitReader(r.Body, r.ContentLength), *buf)
		if err != nil {
			return err
		}
		if n < r.ContentLength {
			return io.ErrUnexpectedEOF
		}
		return bw.Flush()
	}
	cw := httputil.NewChunkedWriter(bw)
	if _, err := io.CopyBuffer(cw, r.Body, *buf); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil { // no trailers
		return err
	}
	return bw.Flush()
}
