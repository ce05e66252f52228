package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestH2Attacks makes HTTP/2 attacks on the HTTPS listener of a real
// fronttier, each on a connection of its own, and checks that fronttier
// closes the attacker's connection with GOAWAY ENHANCE_YOUR_CALM and logs
// why, that the backend saw a bounded number of the attacker's requests,
// and that a well-behaved HTTP/2 client is served meanwhile. The budgets
// are internal/h2guard's defaults, refilled by the real clock, so the
// bound on the backend's work leaves room for the refill of a slow run;
// internal/h2guard's own tests hold the clock still and count exactly.
func TestH2Attacks(t *testing.T) {
	t.Parallel()
	const domain = "h2.example.test"
	var attacked atomic.Int64 // requests for /attack the backend saw
	p, ca := startH2Proxy(t, domain, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/attack" {
			attacked.Add(1)
		}
		io.WriteString(w, "ok")
	}), tlsConf{})
	good, _ := p.httpsClient(t, ca.Roots, false)

	tests := []struct {
		name   string
		attack string // as fronttier logs it
		// frames writes round i of the attack on a; setup, the frames
		// before the first round.
		setup  func(a *h2Attacker) error
		frames func(a *h2Attacker, i int) error
		// maxAttacked bounds the backend's requests.
		maxAttacked int64
	}{
		{
			name: "rapid reset", attack: "rapid_reset",
			// HEADERS and RST_STREAM at once, 10,000 times: h2guard's
			// budget is 500 resets then 50 a second (without it, the
			// backend saw 1,444 and the connection stayed open).
			frames: func(a *h2Attacker, i int) error {
				id := uint32(2*i + 1)
				if err := a.get(id, "/attack", true); err != nil {
					return err
				}
				return a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			},
			maxAttacked: 1000,
		},
		{
			name: "CONTINUATION flood", attack: "continuation_flood",
			// A header block that never ends: empty CONTINUATION frames.
			setup: func(a *h2Attacker) error {
				return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.encode("/attack")})
			},
			frames: func(a *h2Attacker, _ int) error { return a.fr.WriteContinuation(1, false, nil) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := attacked.Load()
			a := dialH2Attacker(t, p.HTTPS, domain)
			ended := make(chan *http2.GoAwayFrame, 1)
			go func() { ended <- a.drain() }()
			written := make(chan int, 1)
			go func() {
				n := 0
				if tt.setup == nil || tt.setup(a) == nil {
					for ; n < 10_000 && tt.frames(a, n) == nil; n++ {
					}
				}
				written <- n
			}()
			served(t, good, p.httpsURL(domain, "/meanwhile"))

			g := <-ended
			t.Logf("%d rounds written; the backend saw %d of them", <-written, attacked.Load()-before)
			if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("the attacker's connection ended with %v, want GOAWAY ENHANCE_YOUR_CALM", g)
			}
			if n := attacked.Load() - before; n > tt.maxAttacked {
				t.Errorf("the backend saw %d of the attacker's requests, want at most %d", n, tt.maxAttacked)
			}
			p.waitLog(t, func(line string) bool {
				return strings.Contains(line, "with ENHANCE_YOUR_CALM: "+tt.attack)
			}, "the connection closed for "+tt.attack)
			if n := metricValue(t, p, "proxy_http2_attack_closes_total", map[string]string{"attack": tt.attack}); n != 1 {
				t.Errorf("proxy_http2_attack_closes_total{attack=%q} = %v, want 1", tt.attack, n)
			}
			served(t, good, p.httpsURL(domain, "/after"))
		})
	}
}

// served requires a GET of url over c to be answered 200 over HTTP/2.
func served(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET %s: %s over %s, want 200 over HTTP/2", url, resp.Status, resp.Proto)
	}
}

// h2Attacker is a raw HTTP/2 client: a framer and an HPACK encoder on a
// TLS connection, for writing what no real client would.
type h2Attacker struct {
	fr        *http2.Framer
	enc       *hpack.Encoder
	block     bytes.Buffer
	authority string
}

// dialH2Attacker connects to addr with SNI name over h2, and sends the
// client preface and an empty SETTINGS frame. The connection closes when
// the test ends, and fails reads and writes after a minute.
func dialH2Attacker(t *testing.T, addr, name string) *h2Attacker {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	a := &h2Attacker{fr: http2.NewFramer(c, c), authority: name}
	a.enc = hpack.NewEncoder(&a.block)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return a
}

// encode returns the header block of a GET of path.
func (a *h2Attacker) encode(path string) []byte {
	a.block.Reset()
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: a.authority}, {Name: ":path", Value: path}} {
		a.enc.WriteField(f)
	}
	return bytes.Clone(a.block.Bytes())
}

// get writes a GET of path on stream id, ending the stream when end.
func (a *h2Attacker) get(id uint32, path string, end bool) error {
	return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.encode(path),
		EndStream: end, EndHeaders: true})
}

// drain reads frames until a GOAWAY arrives, and returns it, or until
// reading fails, and returns nil. It writes nothing, so it runs beside
// the attack's writer.
func (a *h2Attacker) drain() *http2.GoAwayFrame {
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			if se := (http2.StreamError{}); errors.As(err, &se) {
				continue
			}
			return nil
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g
		}
	}
}
