package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fronttier/internal/server"
)

// frontServer serves h like the app does (with internal/server and a
// header timeout), so raw connections can be driven against it.
func frontServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Handler: h, ReadHeaderTimeout: 5 * time.Second})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawExchange writes req on a fresh connection and returns all the proxy
// sends back until it closes the connection or wait passes.
func rawExchange(t *testing.T, addr, req string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	io.WriteString(c, req)
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	// seen answers with what the backend received of the forwarding fields.
	seen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Proto"} {
			w.Header()["Seen-"+k] = []string{strings.Join(r.Header[k], " | ")}
		}
	})
	type fields struct{ xff, realIP, forwarded, proto string }
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    fields
	}{
		{"untrusted client: replaced or removed", nil,
			fields{"127.0.0.1", "127.0.0.1", "", "http"}},
		{"trusted proxy: extended or kept", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			fields{"203.0.113.7, 127.0.0.1", "203.0.113.7", "for=203.0.113.7;proto=https", "https"}},
		{"other range trusted: replaced or removed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			fields{"127.0.0.1", "127.0.0.1", "", "http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, UpstreamOptions{TrustedProxies: tc.trusted}, Options{}, [2]string{"live", serve(t, seen)})
			req, _ := http.NewRequest("GET", "http://"+serve(t, s.h)+"/", nil)
			req.Host = "example.com"
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Real-IP", "203.0.113.7")
			req.Header.Set("Forwarded", "for=203.0.113.7;proto=https")
			req.Header.Set("X-Forwarded-Proto", "https")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := fields{resp.Header.Get("Seen-X-Forwarded-For"), resp.Header.Get("Seen-X-Real-Ip"),
				resp.Header.Get("Seen-Forwarded"), resp.Header.Get("Seen-X-Forwarded-Proto")}
			if got != tc.want {
				t.Errorf("backend saw %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSlowUpload: a client that stops sending its body is cut off after
// the body timeout instead of holding the connection forever.
func TestSlowUpload(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 1 << 20} { // buffered and streamed bodies
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, UpstreamOptions{}, Options{BodyTimeout: 200 * time.Millisecond}, [2]string{"live", serve(t, named("live"))})
			addr := frontServer(t, s.h)
			start := time.Now()
			out := rawExchange(t, addr, fmt.Sprintf("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\nonly a few bytes", size), 5*time.Second)
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("connection held %v by a stalled upload", d)
			}
			if !strings.HasPrefix(out, "HTTP/1.1 408") {
				t.Errorf("a stalled upload was not answered 408:\n%s", out)
			}
		})
	}
}

// TestSlowReader: a client that stops reading a large answer is cut off
// after the send timeout; the handler finishes and reports the request.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	big := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1024 { // 64 MiB, far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	s := newSetup(t, UpstreamOptions{}, Options{SendTimeout: 200 * time.Millisecond}, [2]string{"big", big})
	addr := frontServer(t, s.h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	// Read the status line, then stop reading.
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.obs.last() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the handler is still writing to a client that stopped reading")
		}
		time.Sleep(10 * time.Millisecond) // polling for the handler's report
	}
}

// recordingBackend accepts raw connections and reports every request it
// parses (as "METHOD URI framed=true|false", framed meaning it carries the
// X-Forwarded-Host the proxy writes on every request it frames), answering
// each with a fixed 200.
func recordingBackend(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					ch <- fmt.Sprintf("%s %s framed=%v", req.Method, req.RequestURI, req.Header.Get("X-Forwarded-Host") != "")
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// TestSmuggling sends the classic request-smuggling shapes. Whatever the
// proxy answers the client, every request the backend parses must be one
// the proxy framed itself: bytes the proxy took for a body never reach the
// backend as a request. (A client may pipeline a second request after a
// well-framed first; the proxy forwarding that as its own request is not
// smuggling.)
func TestSmuggling(t *testing.T) {
	t.Parallel()
	const hidden = "GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"
	for _, tc := range []struct{ name, req string }{
		{"CL.TE", "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"TE.CL", "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\nContent-Length: 45\r\n\r\n" + hidden},
		{"obfuscated TE", "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: xchunked\r\nContent-Length: 45\r\n\r\n" + hidden},
		{"TE in Connection", "POST / HTTP/1.1\r\nHost: example.com\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backendAddr, got := recordingBackend(t)
			s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"rec", backendAddr})
			out := rawExchange(t, frontServer(t, s.h), tc.req, time.Second)
			for {
				select {
				case seen := <-got:
					if !strings.HasSuffix(seen, "framed=true") {
						t.Fatalf("the backend parsed a request the proxy did not frame: %s\nproxy answered:\n%s", seen, out)
					}
					continue
				default:
				}
				break
			}
		})
	}
}

// TestUpgradesShutdown: a graceful shutdown waits for upgraded connections
// until its deadline, then closes the ones still open.
func TestUpgradesShutdown(t *testing.T) {
	t.Parallel()
	var u Upgrades
	if err := u.Shutdown(context.Background()); err != nil {
		t.Fatalf("nothing open: %v", err)
	}
	c1, c2 := net.Pipe()
	b1, b2 := net.Pipe()
	defer c2.Close()
	defer b2.Close()
	done := u.add(c1, b1)

	// Ends by itself before the deadline: Shutdown returns nil.
	go done()
	if err := u.Shutdown(context.Background()); err != nil {
		t.Fatalf("drained connection: %v", err)
	}

	// Still open at the deadline: closed.
	d1, d2 := net.Pipe()
	defer d2.Close()
	u.add(d1, b1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := u.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown reported a clean drain with a connection still open")
	}
	if _, err := d2.Write([]byte("x")); err == nil {
		t.Error("the connection still open at the deadline was not closed")
	}
}
