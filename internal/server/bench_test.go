package server

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"fronttier/internal/testutil"
)

// BenchmarkServe measures one keep-alive request and answer through a
// real loopback connection, for this server (also over TLS) and, as the
// reference, for net/http's. The client writes raw requests and reads with
// http.ReadResponse, the same for both.
func BenchmarkServe(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Content-Length"] = []string{"5"}
		io.WriteString(w, "hello")
	})
	run := func(b *testing.B, serve func(net.Listener), cfg *tls.Config) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go serve(ln)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if cfg != nil {
			c = tls.Client(c, cfg)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req := []byte("GET /bench HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("server", func(b *testing.B) {
		s := New(Options{Handler: h})
		defer s.Close()
		run(b, func(ln net.Listener) { s.Serve(ln) }, nil)
	})
	b.Run("net-http", func(b *testing.B) {
		s := &http.Server{Handler: h}
		defer s.Close()
		run(b, func(ln net.Listener) { s.Serve(ln) }, nil)
	})
	b.Run("server-tls", func(b *testing.B) {
		cert := testutil.SelfSigned(b, "localhost")
		s := New(Options{Handler: h, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
		defer s.Close()
		run(b, func(ln net.Listener) { s.Serve(ln) }, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
	})
}
