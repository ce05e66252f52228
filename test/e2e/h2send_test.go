package e2e

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestHTTP2SendTimeout: an HTTP/2 client that stops reading its answer
// (it grants no flow-control window beyond the first 64 KiB) is cut after
// send_timeout_secs: fronttier resets the stream, and the connection
// serves on. On HTTP/2 the proxy moves the stream's write deadline only
// when it has come within the send timeout (internal/proxy's recorder.arm),
// so this is the end-to-end check that a stalled client still meets it.
// The attacker connection fails after a minute: the test ends either way.
func TestHTTP2SendTimeout(t *testing.T) {
	t.Parallel()
	const domain = "send.example.test"
	p, _ := startH2Proxy(t, domain, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.Copy(w, io.LimitReader(zeroReader{}, 64<<20))
			return
		}
		io.WriteString(w, "ok")
	}), tlsConf{SendTimeoutSecs: 1})

	a := dialH2Attacker(t, p.HTTPS, domain)
	if err := a.get(1, "/big", true); err != nil {
		t.Fatal(err)
	}
	var data int
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes of DATA: %v; want RST_STREAM on stream 1", data, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data += len(f.Data())
			continue
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d bytes of DATA; want RST_STREAM on stream 1", f.ErrCode, data)
		case *http2.RSTStreamFrame:
			if f.StreamID != 1 {
				continue
			}
			t.Logf("stream 1 reset (%v) after %d bytes of DATA", f.ErrCode, data)
		default:
			continue
		}
		break
	}
	// The connection still serves: a new stream is answered in full, once
	// the client grants the window its first stream's answer used up.
	if err := a.fr.WriteWindowUpdate(0, uint32(data)); err != nil {
		t.Fatal(err)
	}
	if err := a.get(3, "/small", true); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for stream 3's answer: %v", err)
		}
		if f.Header().StreamID == 3 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			return
		}
	}
}

// startH2Proxy starts a backend serving h in the test's process and a
// fronttier with the HTTPS host domain in front of it (a certificate from
// a new test CA, no redirect); c gives the rest of the configuration (its
// Hosts and Backends are set here). The backend stops when the test ends.
func startH2Proxy(t *testing.T, domain string, h http.Handler, c tlsConf) (*proxyProc, *testCA) {
	t.Helper()
	ca := newTestCA(t, t.TempDir())
	_, cert, key := ca.issueFiles(t, "h2", []string{domain}, leafOpts{})
	backend := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	c.Hosts = []tlsHost{{Domain: domain, Tag: "a", Cert: cert, Key: key, NoRedirect: true}}
	c.Backends = []backendConf{{ID: "b", Addr: ln.Addr().String(), Tags: []string{"a"}}}
	return startTLSProxy(t, c), ca
}

// TestHTTP2SendTimeoutBackendPause: the send timeout is the client's, not
// the backend's: an answer whose backend pauses mid-body for twice
// send_timeout_secs reaches an HTTP/2 client whole (x/net resets a stream
// when its write deadline passes, writing or not: the proxy clears it
// while the backend is silent).
func TestHTTP2SendTimeoutBackendPause(t *testing.T) {
	t.Parallel()
	const domain = "pause.example.test"
	p, ca := startH2Proxy(t, domain, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first,")
		w.(http.Flusher).Flush()
		time.Sleep(4 * time.Second) // a slow backend: the behaviour under test
		io.WriteString(w, "second")
	}), tlsConf{SendTimeoutSecs: 2})
	c, _ := p.httpsClient(t, ca.Roots, false)
	resp, err := c.Get(p.httpsURL(domain, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "first,second" || resp.ProtoMajor != 2 {
		t.Fatalf("over %s: %q, %v; want the whole answer over HTTP/2", resp.Proto, body, err)
	}
}
