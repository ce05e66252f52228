package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestReadHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      string
		method  string
		status  int
		length  int64
		chunked bool
		close   bool
		header  http.Header
		wantErr bool
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
			status: 200, length: 5, header: http.Header{"Content-Length": {"5"}, "Content-Type": {"text/plain"}}},
		{name: "lower-case and odd keys canonicalised", in: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-my-thing: a\r\n\r\n",
			status: 200, length: 0, header: http.Header{"Content-Length": {"0"}, "X-My-Thing": {"a"}}},
		{name: "repeated field keeps order", in: "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"Set-Cookie": {"a=1", "b=2"}, "Content-Length": {"0"}}},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			status: 200, length: -1, chunked: true, header: http.Header{}},
		{name: "chunked and a length refused (RFC 9112 6.3)", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", wantErr: true},
		{name: "a length and chunked refused", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "Transfer-Encoding in HTTP/1.0 refused (RFC 9112 6.1)", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "repeated Transfer-Encoding refused", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "chunked listed after another coding refused", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", wantErr: true},
		{name: "no framing: until close", in: "HTTP/1.1 200 OK\r\n\r\n",
			status: 200, length: -1, close: true, header: http.Header{}},
		{name: "HTTP/1.0 closes", in: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
			status: 200, close: true, header: http.Header{"Content-Length": {"0"}}},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"Content-Length": {"0"}}},
		{name: "hop-by-hop and Connection-listed dropped", in: "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nContent-Length: 0\r\n\r\n",
			status: 200, close: true, header: http.Header{"Content-Length": {"0"}}},
		{name: "HEAD has no body", in: "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", method: "HEAD",
			status: 200, header: http.Header{"Content-Length": {"50"}}},
		{name: "304 has no body", in: "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n",
			status: 304, header: http.Header{"Etag": {`"x"`}}},
		{name: "bare LF line ends", in: "HTTP/1.1 204 No Content\nX-A: b\n\n",
			status: 204, header: http.Header{"X-A": {"b"}}},
		{name: "differing lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", wantErr: true},
		{name: "signed length", in: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", wantErr: true},
		{name: "space in a name", in: "HTTP/1.1 200 OK\r\nX Y: 1\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "NUL in a value", in: "HTTP/1.1 200 OK\r\nX-Y: a\x00b\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "same length twice", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
			status: 200, length: 2, header: http.Header{"Content-Length": {"2", "2"}}},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "unknown transfer coding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: true},
		{name: "space before colon", in: "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", wantErr: true},
		{name: "folded line", in: "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", wantErr: true},
		{name: "control character", in: "HTTP/1.1 200 OK\r\nX-A: b\x00c\r\n\r\n", wantErr: true},
		{name: "bad version", in: "HTTP/2.0 200 OK\r\n\r\n", wantErr: true},
		{name: "bad status", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH_9.2\r\n\r\n", wantErr: true},
		{name: "cut short", in: "HTTP/1.1 200 OK\r\nContent-Le", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p headParser
			method := tc.method
			if method == "" {
				method = "GET"
			}
			h := http.Header{}
			got, err := p.read(bufio.NewReader(strings.NewReader(tc.in)), method, h)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tc.status || got.length != tc.length || got.chunked != tc.chunked || got.close != tc.close {
				t.Errorf("got status %d length %d chunked %v close %v, want %d %d %v %v",
					got.status, got.length, got.chunked, got.close, tc.status, tc.length, tc.chunked, tc.close)
			}
			if !reflect.DeepEqual(h, tc.header) {
				t.Errorf("header %v, want %v", h, tc.header)
			}
		})
	}
}

// interimWriter records the interim answers written to it, with the
// fields each carried.
type interimWriter struct {
	h       http.Header
	interim []string // "103 Link=</a>"
}

func (w *interimWriter) Header() http.Header         { return w.h }
func (w *interimWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *interimWriter) WriteHeader(code int) {
	w.interim = append(w.interim, fmt.Sprintf("%d %v", code, w.h))
}

func TestReadHeadInterim(t *testing.T) {
	t.Parallel()
	in := "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n" +
		"HTTP/1.1 102 Processing\r\n\r\n" +
		"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		name  string
		proto int // minor version of the client's HTTP/1
		want  []string
	}{
		{"HTTP/1.1 client gets 103 and 102, not 100", 1, []string{"103 map[Link:[</a>]]", "102 map[]"}},
		{"HTTP/1.0 client gets none", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := &pconn{}
			pc.br = bufio.NewReader(strings.NewReader(in))
			w := &interimWriter{h: http.Header{}}
			r := &http.Request{Method: "POST", ProtoMajor: 1, ProtoMinor: tc.proto}
			head, err := readHead(pc, w, r)
			if err != nil || head.status != 201 {
				t.Fatalf("%+v, %v", head, err)
			}
			if !reflect.DeepEqual(w.interim, tc.want) {
				t.Errorf("interim answers %q, want %q", w.interim, tc.want)
			}
			if len(w.h) != 1 || w.h.Get("Content-Length") != "0" {
				t.Errorf("interim fields leaked into the answer: %v", w.h)
			}
		})
	}
}

func TestReadHeadTooManyInterim(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", maxInterim+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	pc := &pconn{}
	pc.br = bufio.NewReader(strings.NewReader(in))
	w := &interimWriter{h: http.Header{}}
	if _, err := readHead(pc, w, &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1}); !errors.Is(err, errMalformed) {
		t.Fatalf("%d interim answers: %v, want errMalformed", maxInterim+1, err)
	}
	if len(w.interim) != maxInterim {
		t.Errorf("%d interim answers forwarded, want %d", len(w.interim), maxInterim)
	}
}

// TestReadHeadLongLines: a field line longer than the read buffer is read
// whole (a 5,000-byte Set-Cookie), up to the head limit, and no further.
func TestReadHeadLongLines(t *testing.T) {
	t.Parallel()
	cookie := "id=" + strings.Repeat("x", 5000)
	in := "HTTP/1.1 200 OK\r\nSet-Cookie: " + cookie + "\r\nX-After: 1\r\nContent-Length: 0\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 16) // the minimum: every field is "long"
	p := headParser{max: 8 << 10}
	h := http.Header{}
	if _, err := p.read(br, "GET", h); err != nil {
		t.Fatal(err)
	}
	if h.Get("Set-Cookie") != cookie || h.Get("X-After") != "1" {
		t.Errorf("long field not read whole: %d bytes, X-After %q", len(h.Get("Set-Cookie")), h.Get("X-After"))
	}
	for _, max := range []int{4 << 10, 5000} {
		p := headParser{max: max}
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		if _, err := p.read(br, "GET", http.Header{}); !errors.Is(err, errHeadTooLarge) {
			t.Errorf("limit %d: %v, want errHeadTooLarge", max, err)
		}
	}
}

func TestTrailers(t *testing.T) {
	t.Parallel()
	in := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-Unannounced: no\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	var p headParser
	h := http.Header{}
	head, err := p.read(br, "GET", h)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(head.body(br))
	if err != nil || string(body) != "abc" {
		t.Fatalf("body %q, %v", body, err)
	}
	if err := p.readTrailer(br, head.trailer, h); err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Sum") != "42" || h.Get("X-Unannounced") != "" {
		t.Errorf("trailers %v: want the announced one only", h)
	}
}

func TestLengthReaderShortBody(t *testing.T) {
	t.Parallel()
	l := &lengthReader{r: strings.NewReader("abc"), n: 5}
	if _, err := io.ReadAll(l); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a body cut short gave %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestReadHeadAllocs: parsing a typical head allocates a handful of
// objects, not one per field.
func TestReadHeadAllocs(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\nDate: Thu, 26 Nov 2026 16:00:00 GMT\r\nCache-Control: no-cache\r\n\r\n"
	r := strings.NewReader(in)
	br := bufio.NewReader(r)
	var p headParser
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		br.Reset(r)
		h := make(http.Header, 8)
		if _, err := p.read(br, "GET", h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 5 { // the head, one string of values, one slice of slots, the header map
		t.Errorf("%v allocations per head", allocs)
	}
}
