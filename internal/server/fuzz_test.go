package server

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"fronttier/internal/httpx"
)

// FuzzParseRequest feeds arbitrary heads to the request parser: it must
// never panic, and what it accepts must be unambiguous.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n",
		"GET http://a.example/p HTTP/1.1\r\nHost: b\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"OPTIONS * HTTP/1.0\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		c := &conn{connBufs: &connBufs{br: bufio.NewReader(strings.NewReader(head))}}
		raw, err := c.readHead(1 << 16)
		if err != nil {
			return
		}
		req := new(http.Request)
		p, err := parseRequest(bytes.Clone(raw), req, new(fields))
		if err != nil {
			return
		}
		te, cl := req.Header["Transfer-Encoding"], req.Header["Content-Length"]
		switch {
		case p.chunked && (len(cl) > 0 || len(te) != 1 || !httpx.EqualFold(te[0], "chunked")):
			t.Fatalf("chunked with TE %q CL %q", te, cl)
		case !p.chunked && len(te) > 0:
			t.Fatalf("Transfer-Encoding %q accepted without chunked framing", te)
		case !p.chunked && len(cl) > 1:
			t.Fatalf("Content-Length %q left ambiguous", cl)
		case p.length < -1 || (p.chunked != (p.length == -1)):
			t.Fatalf("length %d chunked %v", p.length, p.chunked)
		case req.URL == nil || req.Method == "" || !validHost(req.Host):
			t.Fatalf("accepted %+v", req)
		}
		for k, vv := range req.Header {
			if !httpx.IsToken(k) {
				t.Fatalf("field name %q", k)
			}
			for _, v := range vv {
				if !httpx.ValidValue(v) {
					t.Fatalf("field value %q", v)
				}
			}
		}
	})
}
