package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

func defaultOptions() options {
	return options{host: "127.0.0.1", healthStatus: http.StatusOK}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		status int
		body   string
	}{
		{200, `{"status":"healthy","backend_id":"backend-a"}`},
		{204, `{"status":"healthy","backend_id":"backend-a"}`},
		{503, `{"status":"unhealthy","backend_id":"backend-a"}`},
		{302, `{"status":"unhealthy","backend_id":"backend-a"}`},
	}
	for _, tt := range tests {
		opt := defaultOptions()
		opt.healthStatus = tt.status
		opt.delay = time.Hour // /health must not wait
		rec := httptest.NewRecorder()
		newHandler("backend-a", opt).ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
		if rec.Code != tt.status {
			t.Errorf("status = %d, want %d", rec.Code, tt.status)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if tt.status == http.StatusNoContent {
			if rec.Body.Len() != 0 {
				t.Errorf("204 health has a body: %q", rec.Body)
			}
			continue
		}
		if got := rec.Body.String(); got != tt.body {
			t.Errorf("health %d body = %q, want %q", tt.status, got, tt.body)
		}
	}
}

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(newHandler("backend-b", defaultOptions()))
	defer srv.Close()

	req, err := http.NewRequest("POST", srv.URL+"/some/path?x=1&y=two", strings.NewReader("hello body"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.example.com"
	req.Header.Set("X-Forwarded-For", "203.0.113.1")
	req.Header.Add("X-Multi", "first")
	req.Header.Add("X-Multi", "second")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Backend-Id"); got != "backend-b" {
		t.Errorf("X-Backend-Id = %q", got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got echoReply
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := echoReply{
		BackendID: "backend-b", Method: "POST", Path: "/some/path", URI: "/some/path?x=1&y=two",
		Query: "x=1&y=two", Host: "app.example.com", BodyBytes: int64(len("hello body")),
	}
	headers := got.Headers
	got.Headers = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("echo = %+v\nwant %+v", got, want)
	}
	if headers["X-Forwarded-For"] != "203.0.113.1" || headers["X-Multi"] != "first" {
		t.Errorf("headers = %v", headers)
	}
}

func TestEchoKeepsUncleanPaths(t *testing.T) {
	for _, target := range []string{"//double", "/a/../b", "/a%2Fb", "/health/"} {
		rec := httptest.NewRecorder()
		newHandler("x", defaultOptions()).ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		var got echoReply
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: status %d, body %q: %v", target, rec.Code, rec.Body, err)
		}
		if got.URI != target {
			t.Errorf("uri = %q, want %q", got.URI, target)
		}
	}
}

func TestDelay(t *testing.T) {
	opt := defaultOptions()
	opt.delay = 50 * time.Millisecond
	h := newHandler("slow", opt)
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if el := time.Since(start); el < opt.delay {
		t.Errorf("echo answered after %v, want at least %v", el, opt.delay)
	}
	if rec.Code != 200 {
		t.Errorf("status = %d", rec.Code)
	}

	// A cancelled request stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	opt.delay = time.Hour
	done := make(chan struct{})
	go func() {
		newHandler("slow", opt).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("delay ignored request cancellation")
	}
}

// flushRecorder records the body as it stood at each Flush.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushed []string
}

func (f *flushRecorder) Flush() {
	f.flushed = append(f.flushed, f.Body.String())
	f.ResponseRecorder.Flush()
}

func TestSSEFlushesEachEvent(t *testing.T) {
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	newHandler("s", defaultOptions()).ServeHTTP(rec, httptest.NewRequest("GET", "/sse?n=3", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	want := []string{"", "data: 1\n\n", "data: 1\n\ndata: 2\n\n", "data: 1\n\ndata: 2\n\ndata: 3\n\n"}
	if fmt.Sprint(rec.flushed) != fmt.Sprint(want) {
		t.Errorf("body at each flush = %q, want %q", rec.flushed, want)
	}
}

func TestSSEArrivesIncrementally(t *testing.T) {
	srv := httptest.NewServer(newHandler("s", defaultOptions()))
	defer srv.Close()
	// 1000 events take at least 10s to send in full; the first must arrive
	// long before that.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sse?n=1000", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		if blank, _ := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not followed by a blank line: %q", i, blank)
		}
	}
}

func TestSSEBadN(t *testing.T) {
	for _, n := range []string{"x", "-1", "1000000"} {
		rec := httptest.NewRecorder()
		newHandler("s", defaultOptions()).ServeHTTP(rec, httptest.NewRequest("GET", "/sse?n="+n, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("n=%s: status %d, want 400", n, rec.Code)
		}
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := httptest.NewServer(newHandler("ws-backend", defaultOptions()))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	// The key and accept value are the example of RFC 6455, section 1.3.
	// "early" is sent with the request, before the 101 arrives.
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: example.com\r\n"+
		"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("Sec-WebSocket-Accept = %q", got)
	}
	if resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("X-Backend-Id") != "ws-backend" {
		t.Errorf("headers = %v", resp.Header)
	}

	// A masked text frame "Hello" (RFC 6455, section 5.7) comes back as is.
	frame := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("early"), frame...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("echo = %x, want %x", got, want)
	}

	// Half-closing our side ends the echo: the server closes too.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after EOF: read %q, %v; want clean close", rest, err)
	}
}

func TestWebSocketRejectsPlainRequest(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler("w", defaultOptions()).ServeHTTP(rec, httptest.NewRequest("GET", "/ws", nil))
	if rec.Code != http.StatusUpgradeRequired {
		t.Errorf("status = %d, want 426", rec.Code)
	}
}

func TestWebSocketAccept(t *testing.T) {
	if got := websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("websocketAccept = %q", got)
	}
}

func TestRunArgumentErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no args":         {},
		"one arg":         {"9527"},
		"three args":      {"9527", "a", "b"},
		"port not number": {"http", "a"},
		"port too big":    {"65536", "a"},
		"negative port":   {"-1", "a"},
		"empty id":        {"9527", ""},
		"unknown flag":    {"-bogus", "9527", "a"},
		"bad delay":       {"-delay", "soon", "9527", "a"},
		"bad health":      {"-health-status", "42", "9527", "a"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%s: run(%q) = %v, want a usage error", name, args, err)
		}
		if !strings.HasPrefix(stderr.String(), usageLine) {
			t.Errorf("%s: stderr = %q, want the usage", name, stderr.String())
		}
	}
}

// startRun runs the command with args in the background and returns the
// address it listens on, a function stopping it as SIGTERM would, and the
// channel run's result arrives on.
func startRun(t *testing.T, id string, args ...string) (addr string, stop context.CancelFunc, errc <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var stderr testutil.SyncBuffer
	ch := make(chan error, 1)
	go func() { ch <- run(ctx, append(args, "0", id), &stderr) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if rest, ok := strings.CutPrefix(stderr.String(), "testbackend "+id+" listening on "); ok {
			return strings.TrimSpace(rest), cancel, ch
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start line; stderr = %q", stderr.String())
		}
		select {
		case err := <-ch:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitRun waits for run's result after stop and checks it is nil.
func waitRun(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after stop = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after stop")
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	addr, stop, errc := startRun(t, "backend-z", "-host", "127.0.0.1", "-health-status", "503")
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != `{"status":"unhealthy","backend_id":"backend-z"}` {
		t.Errorf("health = %d %q", resp.StatusCode, body)
	}
	stop()
	waitRun(t, errc)
}

func TestRunShutdownLetsRequestsFinish(t *testing.T) {
	addr, stop, errc := startRun(t, "graceful", "-delay", "300ms")
	type result struct {
		reply echoReply
		err   error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		resp, err := http.Get("http://" + addr + "/slow")
		if err == nil {
			defer resp.Body.Close()
			err = json.NewDecoder(resp.Body).Decode(&r.reply)
		}
		r.err = err
		res <- r
	}()
	time.Sleep(100 * time.Millisecond) // let the request arrive
	stop()
	r := <-res
	if r.err != nil || r.reply.Path != "/slow" {
		t.Errorf("in-flight request during shutdown: %+v, %v", r.reply, r.err)
	}
	waitRun(t, errc)
}

// TestFailRate checks -fail-rate fails exactly its share of echo
// requests, evenly, with the marker header, and never /health.
func TestFailRate(t *testing.T) {
	opt := defaultOptions()
	opt.failRate = 0.05
	h := newHandler("flaky", opt)
	failed := 0
	for i := 1; i <= 200; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		switch {
		case rec.Code == 500 && rec.Header().Get("X-Injected-Failure") == "1":
			failed++
			if i%20 != 0 {
				t.Errorf("request %d failed; want every 20th", i)
			}
		case rec.Code != 200:
			t.Fatalf("request %d: status %d", i, rec.Code)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
		if rec.Code != 200 {
			t.Fatalf("/health: %d", rec.Code)
		}
	}
	if failed != 10 {
		t.Errorf("%d of 200 failed, want 10", failed)
	}
	for _, bad := range []string{"-1", "1.5", "NaN"} {
		if _, _, _, err := parseArgs([]string{"-fail-rate", bad, "1", "x"}, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("-fail-rate %s: %v, want a usage error", bad, err)
		}
	}
}
