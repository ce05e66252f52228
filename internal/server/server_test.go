package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// TestKeepAlive: a client's requests share one connection.
func TestKeepAlive(t *testing.T) {
	ts := start(t, echo, nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	for i := range 50 {
		resp, err := c.Post("http://"+ts.addr+"/p?q=1", "text/plain", strings.NewReader(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /p %d", i); string(b) != want || resp.Header.Get("X-Target") != "/p?q=1" {
			t.Fatalf("got %q (target %q), want %q", b, resp.Header.Get("X-Target"), want)
		}
		if resp.Header.Get("Date") == "" {
			t.Fatal("no Date header")
		}
	}
	if n := ts.news.Load(); n != 1 {
		t.Errorf("%d connections for 50 sequential requests, want 1", n)
	}
}

// TestPipelining: requests sent back to back are answered in order.
func TestPipelining(t *testing.T) {
	ts := start(t, echo, nil)
	c := dial(t, ts.addr)
	var req strings.Builder
	for i := range 3 {
		fmt.Fprintf(&req, "POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d", i, i)
	}
	io.WriteString(c, req.String())
	br := bufio.NewReader(c)
	for i := range 3 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("POST /%d %d", i, i); string(b) != want {
			t.Fatalf("response %d: %q, want %q", i, b, want)
		}
	}
}

// TestBodies: chunked request bodies with trailers, 100-continue, and
// the framing of answers.
func TestBodies(t *testing.T) {
	ts := start(t, echo, nil)
	resp, body := exchange(t, ts.addr, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
		"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 5\r\nX-Other: no\r\n\r\n")
	if body != "POST /c abcde" || resp.Header.Get("X-Trailer") != "X-Sum=5" {
		t.Errorf("chunked: body %q, trailers %q", body, resp.Header.Get("X-Trailer"))
	}

	// Expect: 100-continue: the interim answer comes before the body is sent.
	c := dial(t, ts.addr)
	io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hi")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "PUT /e hi" {
		t.Errorf("after 100-continue: %q", b)
	}
}

// TestAnswerFraming checks how answers are delimited.
func TestAnswerFraming(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two")
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "fivefive") // over: cut to the declared length
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
			t.Errorf("write after 204: %v", err)
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Check")
		io.WriteString(w, "body")
		w.Header().Set("X-Check", "ok")
	})
	mux.HandleFunc("/split", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: pwned=1"}
		w.Header()["Bad Name"] = []string{"x"}
	})
	ts := start(t, mux, nil)
	for _, tc := range []struct {
		req, body string
		te        []string
		length    int64
		check     func(*http.Response) error
	}{
		{req: "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", body: "onetwo", te: []string{"chunked"}, length: -1},
		{req: "GET /length HTTP/1.1\r\nHost: x\r\n\r\n", body: "fivef", length: 5},
		{req: "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n", body: "", length: 0},
		{req: "HEAD /chunked HTTP/1.1\r\nHost: x\r\n\r\n", body: "", length: -1},
		{req: "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n", body: "", length: 0},
		{req: "GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n", body: "body", te: []string{"chunked"}, length: -1,
			check: func(r *http.Response) error {
				if r.Trailer.Get("X-Check") != "ok" {
					return fmt.Errorf("trailer %v", r.Trailer)
				}
				return nil
			}},
		{req: "GET /split HTTP/1.1\r\nHost: x\r\n\r\n", length: 0, check: func(r *http.Response) error {
			if r.Header.Get("Set-Cookie") != "" || r.Header.Get("X-Evil") != "a  Set-Cookie: pwned=1" {
				return fmt.Errorf("response split: %v", r.Header)
			}
			return nil
		}},
		{req: "GET /chunked HTTP/1.0\r\n\r\n", body: "onetwo", length: -1, check: func(r *http.Response) error {
			if !r.Close {
				return fmt.Errorf("HTTP/1.0 answer of unknown length must end with the connection")
			}
			return nil
		}},
	} {
		t.Run(tc.req[:strings.IndexByte(tc.req, '\r')], func(t *testing.T) {
			c := dial(t, ts.addr)
			io.WriteString(c, tc.req)
			method, _, _ := strings.Cut(tc.req, " ")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.body || fmt.Sprint(resp.TransferEncoding) != fmt.Sprint(tc.te) || resp.ContentLength != tc.length {
				t.Errorf("body %q TE %v length %d; want %q %v %d", b, resp.TransferEncoding, resp.ContentLength, tc.body, tc.te, tc.length)
			}
			if tc.check != nil {
				if err := tc.check(resp); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestRefused: malformed and ambiguous requests get the right status, are
// never handed to the handler, and the connection closes.
func TestRefused(t *testing.T) {
	called := make(chan string, 100)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called <- r.RequestURI }),
		func(o *Options) { o.MaxHeaderBytes = 4096 })
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"unknown TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"two TEs", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"bad CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"folded line", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
		{"bad request line", "GET /\r\nHost: a\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"bad version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400},
		{"expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431},
		{"control in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad trailer key", "POST / HTTP/1.1\r\nHost: a\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			io.WriteString(c, tc.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if !closed(c, br) {
				t.Error("connection left open after a refused request")
			}
		})
	}
	select {
	case uri := <-called:
		t.Errorf("the handler saw a refused request (%s)", uri)
	default:
	}
}

// TestHandlerPanics: an aborted handler breaks the answer off; a panic is
// logged; neither takes the server down.
func TestHandlerPanics(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}), nil)
	for _, path := range []string{"/abort", "/boom"} {
		c := dial(t, ts.addr)
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != io.ErrUnexpectedEOF {
			t.Errorf("%s: body read ended with %v, want a broken-off body", path, err)
		}
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "panic serving") || !strings.Contains(logs, "boom") ||
		strings.Count(logs, "panic serving") != 1 {
		t.Errorf("logs: %s", logs)
	}
}

// TestHijack: the connection is handed over with what was buffered.
func TestHijack(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		io.WriteString(c, "echo:"+line)
	}), nil)
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo:hello\n" {
		t.Errorf("after the upgrade: %q", line)
	}
}

// TestTimeouts: a client that trickles its head (slowloris) or idles is
// cut off.
func TestTimeouts(t *testing.T) {
	ts := start(t, echo, func(o *Options) {
		o.ReadHeaderTimeout = 200 * time.Millisecond
		o.IdleTimeout = 300 * time.Millisecond
	})
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	if !closed(c, bufio.NewReader(c)) {
		t.Error("a slow head was not cut off")
	}
	c = dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if !closed(c, br) {
		t.Error("an idle connection was not closed")
	}
}

// TestClientGone: the request context reports a client that left.
func TestClientGone(t *testing.T) {
	gone := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for r.Context().Err() == nil && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case <-r.Context().Done():
		default:
			t.Error("Err is set but Done is not closed")
		}
		gone <- r.Context().Err()
	}), nil)
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(20 * time.Millisecond) // let the handler start: a Close before the request is read is another case
	c.Close()
	if err := <-gone; err != context.Canceled {
		t.Errorf("context error %v after the client left, want Canceled", err)
	}
}

// TestShutdown: idle connections close at once, an active exchange
// finishes, and Shutdown returns when it has.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)
	idle := dial(t, ts.addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	resp, err := http.ReadResponse(idleBR, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)

	active := dial(t, ts.addr)
	io.WriteString(active, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()
	if !closed(idle, idleBR) {
		t.Error("idle connection not closed by Shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with an exchange in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	br := bufio.NewReader(active)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("in-flight answer %q (close %v), want done with Connection: close", b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// TestUnreadBody: a small unread body is drained and the connection kept;
// a large one closes it.
func TestUnreadBody(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), nil)
	c := dial(t, ts.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.ReadAll(resp.Body)
	}
	c = dial(t, ts.addr)
	br = bufio.NewReader(c)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if !resp.Close {
		t.Error("a 1 MiB unread body should close the connection")
	}
}

// TestTLS: HTTP/1.1 over TLS carries the TLS state; an ALPN protocol with
// a NextProto handler goes to it; plain HTTP to the TLS port gets a 400.
func TestTLS(t *testing.T) {
	cert := testutil.SelfSigned(t, "localhost")
	h2 := make(chan string, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("no TLS state")
		}
		io.WriteString(w, r.TLS.ServerName)
	}), func(o *Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		o.NextProto = map[string]func(*tls.Conn){"h2": func(c *tls.Conn) { h2 <- c.ConnectionState().NegotiatedProtocol; c.Close() }}
	})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} //nolint:gosec // self-signed test certificate
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "localhost" || resp.ProtoMajor != 1 {
		t.Errorf("over TLS: %q %s", b, resp.Proto)
	}
	tc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // self-signed test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if p := <-h2; p != "h2" {
		t.Errorf("NextProto handler got %q", p)
	}
	resp, body := exchange(t, ts.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS port: %d %q", resp.StatusCode, body)
	}
	eventually(t, "the handshake error logged", func() bool {
		return strings.Contains(ts.logs.String(), "http: TLS handshake error from 127.0.0.1:")
	})
}

// TestMaxConns: over the cap, a client waits until a connection closes;
// a hijacked connection holds its slot until it is closed.
func TestMaxConns(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hijack" {
			c, _, _ := http.NewResponseController(w).Hijack()
			hijacked <- c
			return
		}
		io.WriteString(w, "ok")
	}), func(o *Options) { o.MaxConns = 1 })
	first := dial(t, ts.addr)
	io.WriteString(first, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	hc := <-hijacked

	second := dial(t, ts.addr) // the kernel accepts it; the server does not yet
	io.WriteString(second, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	second.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := second.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("a connection over the cap was served (%v)", err)
	}
	hc.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("after the hijacked connection closed: %v", err)
	}
	resp.Body.Close()
}

// TestContinueRace: a body read on another goroutine (which may send the
// 100 Continue) races the answer being written; under -race this checks
// that they never write the connection's buffer at once, and the client
// always gets one well-formed final answer.
func TestContinueRace(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			close(started)
			io.ReadAll(r.Body)
		}()
		<-started // the read, and its 100 Continue, are under way now or soon
		io.WriteString(w, "early")
		w.(http.Flusher).Flush()
		<-done
	}), nil)
	for range 50 {
		c := dial(t, ts.addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err == nil && resp.StatusCode == http.StatusContinue {
			resp, err = http.ReadResponse(br, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "early" {
			t.Fatalf("answer %d %q", resp.StatusCode, b)
		}
		c.Close()
	}
}

// TestInformational: a 1xx answer goes out at once with the fields set so
// far (not the server's framing fields), and the final answer follows.
func TestInformational(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	}), nil)
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	early, err := http.ReadResponse(br, nil)
	if err != nil || early.StatusCode != http.StatusEarlyHints || early.Header.Get("Link") == "" || early.Header.Get("Connection") != "" {
		t.Fatalf("interim answer %+v, %v", early, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "final" || !resp.Close {
		t.Errorf("final answer %q (close %v)", b, resp.Close)
	}
}

// TestHeadersPerRequest: a connection reuses its header storage, and no
// field of one request shows in the next.
func TestHeadersPerRequest(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q %q %d", r.Header.Get("X-A"), r.Header["X-B"], len(r.Header))
	}), nil)
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\nX-B: 3\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: x\r\nX-B: 4\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: x"+strings.Repeat("\r\nX-Big: "+strings.Repeat("b", 1000), 20)+"\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for i, want := range []string{`"1" ["2" "3"] 2`, `"" ["4"] 1`, `"" [] 1`, `"" [] 0`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != want {
			t.Errorf("request %d saw %s, want %s", i, b, want)
		}
	}
}
