package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// FuzzResponse feeds arbitrary bytes to fronttier as a backend's whole
// answer to a GET, and checks what the client gets against Go's reading of
// the same bytes (http.ReadResponse, as net/http's Transport reads them):
// the answer is either the one Go read (status and body, complete only if
// Go read it complete), or fronttier's own 502/504, or a connection cut
// after no more of the body than the backend sent. A second request, on
// the same client connection when it stayed open, must then get its own
// answer: nothing of the first leaks into it. The server must log no
// panic.
//
// Run: go test -run XXX -fuzz FuzzResponse -fuzztime 60s ./internal/proxy/
func FuzzResponse(f *testing.F) {
	for _, s := range diffSeeds() {
		f.Add(s)
	}
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
	} {
		f.Add([]byte(s))
	}

	be := &fuzzBackend{}
	be.addr = newRawBackend(f, be.serve).addr
	logs := &panicRecorder{}
	front := startFronttier(f, be.addr, logs)

	f.Fuzz(func(t *testing.T, raw []byte) {
		want := readAsGo(raw)
		be.set(raw, want.complete && !want.byClose)

		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		got := exchangeOn(c, br, getReq("/fuzz"), 0)
		if msg := want.judge(got); msg != "" {
			t.Fatalf("%s\nbackend sent %q\nGo read %s\nclient got:\n%s", msg, raw, want, got.raw())
		}

		// The next request, on the same connection if it may carry one.
		var next clientResult
		if got.resp != nil && got.end == "complete" && !got.resp.Close && got.conn == "unknown" {
			next = exchangeOn(c, br, getReq("/sentinel"), 0)
		}
		if next.resp == nil && (next.err == "" || next.err == errClosedEarly) {
			next = fuzzRoundTrip(t, front)
		}
		if next.resp == nil || next.resp.StatusCode != 200 || string(next.body) != "sentinel" || next.end != "complete" {
			t.Fatalf("the request after it got:\n%s\nbackend sent %q\nfirst answer:\n%s", next.raw(), raw, got.raw())
		}
		if msg := logs.take(); msg != "" {
			t.Fatalf("server log: %s\nbackend sent %q", msg, raw)
		}
	})
}

// fuzzRoundTrip sends the sentinel request on a new connection.
func fuzzRoundTrip(t *testing.T, front string) clientResult {
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return exchangeOn(c, bufio.NewReader(c), getReq("/sentinel"), 0)
}

// fuzzBackend answers GET /fuzz with the input bytes, then closes the
// connection unless the input is an answer complete by its own framing;
// it answers GET /sentinel with a fixed 200.
type fuzzBackend struct {
	addr string
	mu   sync.Mutex // guards raw and keep
	raw  []byte
	keep bool
}

const fuzzSentinel = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nsentinel"

func (b *fuzzBackend) set(raw []byte, keep bool) {
	b.mu.Lock()
	b.raw, b.keep = raw, keep
	b.mu.Unlock()
}

func (b *fuzzBackend) serve(c *bconn) {
	for {
		req, _, err := c.readRequest()
		if err != nil {
			return
		}
		if req.URL.Path == "/sentinel" {
			if !c.run([]rawStep{rawSend(fuzzSentinel)}) {
				return
			}
			continue
		}
		b.mu.Lock()
		raw, keep := b.raw, b.keep
		b.mu.Unlock()
		if !c.run([]rawStep{rawSend(string(raw))}) || !keep {
			return
		}
	}
}

// goReading is Go's reading of a backend's answer to a GET.
type goReading struct {
	err      error // Go could not read a final head
	status   int
	body     []byte
	complete bool // the body ended as its framing says
	byClose  bool // the body is delimited by the connection's close
}

func (o goReading) String() string {
	if o.err != nil {
		return "no answer: " + o.err.Error()
	}
	return fmt.Sprintf("status %d, body %q, complete %v, by close %v", o.status, o.body, o.complete, o.byClose)
}

// readAsGo reads raw as the answer to a GET, skipping interim answers.
func readAsGo(raw []byte) goReading {
	br := bufio.NewReader(bytes.NewReader(raw))
	req := &http.Request{Method: http.MethodGet}
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return goReading{err: err}
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil && len(resp.TransferEncoding) > 0 && bytes.HasSuffix(raw, []byte("\n")) && !bytes.HasSuffix(raw, []byte("\r\n")) {
			// RFC 9112 2.2 lets a recipient take a lone LF for a line's
			// end, and fronttier does, in trailers too; Go's body reader
			// needs two bytes to see a trailer section's end, so one that
			// ends the input with a lone LF reads as cut. Read it with a
			// CRLF there instead: an intended leniency, not a cut.
			if r := readAsGo(append(raw[:len(raw)-1:len(raw)-1], '\r', '\n')); r.complete && bytes.Equal(r.body, body) {
				return r
			}
		}
		return goReading{
			status:   resp.StatusCode,
			body:     body,
			complete: err == nil,
			byClose:  resp.ContentLength < 0 && resp.TransferEncoding == nil && bodyAllowed(resp),
		}
	}
}

// judge returns what is wrong with got as fronttier's forwarding of the
// answer o describes, or "".
func (o goReading) judge(got clientResult) string {
	if got.resp == nil {
		if got.err == errClosedEarly {
			return "" // cut before the head
		}
		return "the client got no answer: " + got.err
	}
	code := got.resp.StatusCode
	if code == http.StatusBadGateway || code == http.StatusGatewayTimeout {
		if got.end == "complete" {
			return "" // fronttier's own answer (or the backend's 502/504)
		}
	}
	switch {
	case o.err != nil:
		return "fronttier forwarded an answer Go could not read"
	case code != o.status:
		return fmt.Sprintf("status %d, Go read %d", code, o.status)
	case got.end == "hung":
		return "the client was left hanging mid-body"
	case got.end == "cut" && !bytes.HasPrefix(o.body, got.body):
		return "the cut answer's body is not a prefix of the backend's"
	case got.end == "complete" && !o.complete:
		return "a complete-looking answer where the backend's was cut"
	case got.end == "complete" && !bytes.Equal(got.body, o.body):
		return "the body differs from Go's reading"
	}
	return ""
}

// panicRecorder keeps what a server logs about panics, for the fuzz
// target to check after each input.
type panicRecorder struct {
	mu  sync.Mutex
	msg string
}

func (p *panicRecorder) Write(b []byte) (int, error) {
	if strings.Contains(string(b), "panic") {
		p.mu.Lock()
		p.msg += string(b)
		p.mu.Unlock()
	}
	return len(b), nil
}

func (p *panicRecorder) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := p.msg
	p.msg = ""
	return msg
}
