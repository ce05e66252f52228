package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/route"
)

// fixedRoutes serves one table.
type fixedRoutes struct{ t *route.Table }

func (f fixedRoutes) Table() *route.Table { return f.t }

// observed records what the handler reports.
type observed struct {
	mu       sync.Mutex
	requests []string // "domain backend code"
	retries  int
	panics   int
	failures []string
}

func (o *observed) Request(domain, _, backend string, code int, failed bool, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := fmt.Sprintf("%s %s %d", domain, backend, code)
	if failed {
		r += " failed"
	}
	o.requests = append(o.requests, r)
}
func (o *observed) Retry(string, string) { o.mu.Lock(); o.retries++; o.mu.Unlock() }
func (o *observed) Panic(string)         { o.mu.Lock(); o.panics++; o.mu.Unlock() }
func (o *observed) Failure(b *backend.Backend, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = append(o.failures, b.ID)
}

func (o *observed) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.requests) == 0 {
		return ""
	}
	return o.requests[len(o.requests)-1]
}

type ready bool

func (r ready) Ready(string) bool { return bool(r) }

// named answers with its name in X-Backend-Id and echoes the body length.
func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend-Id", name)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Host", r.Host)
		fmt.Fprintf(w, "%s %d", name, n)
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type setup struct {
	h   *Handler
	obs *observed
	bs  map[string]*backend.Backend
}

// newSetup builds a handler routing example.com to backends id=addr, in
// the given order, with opts applied.
func newSetup(t testing.TB, uo UpstreamOptions, o Options, backends ...[2]string) *setup {
	t.Helper()
	reg := backend.NewRegistry(NewFactory(uo), nil)
	specs := make([]backend.Spec, len(backends))
	for i, b := range backends {
		specs[i] = backend.Spec{ID: b[0], Addr: b[1]}
	}
	live := reg.Sync(specs)
	t.Cleanup(func() { reg.Sync(nil) })
	members := make([]*backend.Backend, len(backends))
	for i, b := range backends {
		members[i] = live[b[0]]
	}
	pool, err := balance.NewPool("", members, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := balance.NewPool("", nil, nil)
	table := route.Build([]*route.Host{
		{Domain: "example.com", Tag: "a", Redirect: true, TLS: true, Pool: pool},
		{Domain: "empty.example.com", Tag: "none", Pool: empty},
	})
	obs := &observed{}
	o.Routes = fixedRoutes{table}
	o.Observer = obs
	o.Failures = obs
	return &setup{h: New(o), obs: obs, bs: live}
}

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func do(t *testing.T, h http.Handler, method, host, target string, body io.Reader) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoutesAndBalances(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{}, Options{},
		[2]string{"a1", serve(t, named("a1"))}, [2]string{"a2", serve(t, named("a2"))})
	counts := map[string]int{}
	for range 10 {
		resp := do(t, s.h, "GET", "Example.COM:8080", "/x", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		counts[resp.Header.Get("X-Backend-Id")]++
		if got := resp.Header.Get("X-Seen-Host"); got != "Example.COM:8080" {
			t.Errorf("backend saw Host %q, want the client's", got)
		}
	}
	if counts["a1"] != 5 || counts["a2"] != 5 {
		t.Errorf("round robin gave %v, want 5 each", counts)
	}
}

func TestOwnAnswers(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{DialTimeout: time.Second}, Options{}, [2]string{"dead", closedAddr(t)})
	for _, tc := range []struct {
		name, host string
		code       int
		body       string
	}{
		{"unknown host", "nope.example.org", 404, "404 unknown host\n"},
		{"no backend for tag", "empty.example.com", 503, "503 no backend available\n"},
		{"backend unreachable", "example.com", 502, "502 bad gateway\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, s.h, "GET", tc.host, "/", nil)
			if resp.StatusCode != tc.code || readBody(t, resp) != tc.body {
				t.Errorf("got %d, want %d %q", resp.StatusCode, tc.code, tc.body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestRetriesOnDialFailure(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{DialTimeout: time.Second}, Options{},
		[2]string{"dead", closedAddr(t)}, [2]string{"live", serve(t, named("live"))})
	for _, method := range []string{"GET", "POST"} {
		for range 4 { // round robin starts on each backend in turn
			resp := do(t, s.h, method, "example.com", "/", strings.NewReader("hello"))
			if body := readBody(t, resp); resp.StatusCode != 200 || body != "live 5" {
				t.Fatalf("%s: got %d %q, want 200 from live with the whole body", method, resp.StatusCode, body)
			}
		}
	}
	if len(s.obs.failures) == 0 || s.obs.retries != len(s.obs.failures) {
		t.Errorf("failures %v, retries %d: want every failure reported and retried", s.obs.failures, s.obs.retries)
	}
}

// resetting reads the request, then closes the connection without an
// answer: the request reached the backend.
func resetting(t *testing.T, hits *atomic.Int32) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
}

func TestRetryOnlyWhenSafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method string
		code   int
	}{
		{"GET", 200}, {"PUT", 200}, {"DELETE", 200}, // idempotent: sent again
		{"POST", 502}, {"PATCH", 502}, // may have had an effect: not
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			s := newSetup(t, UpstreamOptions{}, Options{},
				[2]string{"bad", resetting(t, &hits)}, [2]string{"good", serve(t, named("good"))})
			for i := range 2 {
				resp := do(t, s.h, tc.method, "example.com", "/", strings.NewReader("x"))
				want := tc.code
				if i == 1 {
					want = 200 // the second request starts on "good"
				}
				if resp.StatusCode != want {
					t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
				}
			}
			if hits.Load() == 0 {
				t.Fatal("the resetting backend was never tried")
			}
		})
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	s := newSetup(t, UpstreamOptions{ResponseHeaderTimeout: 50 * time.Millisecond}, Options{}, [2]string{"slow", slow})
	if resp := do(t, s.h, "GET", "example.com", "/", nil); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

func TestPanicMode(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"sick", serve(t, named("sick"))})
	s.bs["sick"].SetHealth(backend.Unhealthy)
	resp := do(t, s.h, "GET", "example.com", "/", nil)
	if resp.StatusCode != 200 || s.obs.panics != 1 {
		t.Fatalf("status %d, panics %d: want the only (unhealthy) backend tried and counted", resp.StatusCode, s.obs.panics)
	}
}

func TestSkipsUnhealthy(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{}, Options{},
		[2]string{"sick", serve(t, named("sick"))}, [2]string{"well", serve(t, named("well"))})
	s.bs["sick"].SetHealth(backend.Unhealthy)
	for range 6 {
		if got := do(t, s.h, "GET", "example.com", "/", nil).Header.Get("X-Backend-Id"); got != "well" {
			t.Fatalf("request went to %q", got)
		}
	}
	if s.obs.panics != 0 {
		t.Errorf("panics %d with a healthy backend available", s.obs.panics)
	}
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	live := serve(t, named("live"))
	challenge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "token") })
	for _, tc := range []struct {
		name     string
		ready    bool
		port     int
		target   string
		code     int
		location string
	}{
		{"no certificate: proxied", false, 8443, "/a?b=c", 200, ""},
		{"certificate: redirected with port", true, 8443, "/a?b=c", 301, "https://example.com:8443/a?b=c"},
		{"port 443 is implied", true, 443, "/p", 301, "https://example.com/p"},
		{"acme challenge never redirected", true, 443, "/.well-known/acme-challenge/abc", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, UpstreamOptions{}, Options{TLS: ready(tc.ready), HTTPSPort: tc.port, Challenge: challenge},
				[2]string{"live", live})
			resp := do(t, s.h, "GET", "example.com:8080", tc.target, nil)
			if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{}, Options{MaxBodyBytes: 1000}, [2]string{"live", serve(t, named("live"))})
	resp := do(t, s.h, "POST", "example.com", "/", strings.NewReader(strings.Repeat("x", 2000)))
	if resp.StatusCode != 413 {
		t.Errorf("declared length over the limit: %d, want 413", resp.StatusCode)
	}
	// A chunked body (no declared length) trips the limit while streaming.
	req := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("y", 3000))))
	req.Host, req.ContentLength = "example.com", -1
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Errorf("streamed body over the limit: %d, want 413", rec.Code)
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"live", serve(t, named("live"))})
	front := serve(t, s.h)
	req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
	req.Host = "example.com"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.1" {
		t.Errorf("backend saw X-Forwarded-For %q, want only the client's address", got)
	}
}

func TestStreamsResponses(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	sse := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"sse", sse})
	front := serve(t, s.h)
	req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
	req.Host = "example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 2 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{} // the next event is sent only after this one arrived
	}
}

func TestClientGoneIsNotABackendFailure(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}))
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"slow", slow})
	front := serve(t, s.h)
	conn, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	<-started
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.obs.last() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling for the handler's report
	}
	if got := s.obs.last(); got != "example.com slow 499" {
		t.Errorf("reported %q, want the client-closed status", got)
	}
	if len(s.obs.failures) != 0 {
		t.Errorf("backend blamed for the client leaving: %v", s.obs.failures)
	}
}

func TestPassive5xx(t *testing.T) {
	t.Parallel()
	failing := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	for _, on := range []bool{false, true} {
		s := newSetup(t, UpstreamOptions{}, Options{Passive5xx: on}, [2]string{"f", failing})
		resp := do(t, s.h, "GET", "example.com", "/", nil)
		if resp.StatusCode != 500 {
			t.Fatalf("status %d: the backend's answer must pass through", resp.StatusCode)
		}
		if got := len(s.obs.failures); (got == 1) != on {
			t.Errorf("passive_5xx=%v: %d failures reported", on, got)
		}
		if s.obs.retries != 0 {
			t.Errorf("a 5xx answer was retried")
		}
	}
}

// TestDrainOnRemoval: a backend that leaves the registry (deleted, or its
// tag switched away) finishes the requests it is serving.
func TestDrainOnRemoval(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	reg := backend.NewRegistry(NewFactory(UpstreamOptions{}), nil)
	live := reg.Sync([]backend.Spec{{ID: "slow", Addr: slow}})
	pool, _ := balance.NewPool("", []*backend.Backend{live["slow"]}, nil)
	h := New(Options{Routes: fixedRoutes{route.Build([]*route.Host{{Domain: "example.com", Pool: pool}})}})

	done := make(chan *http.Response)
	go func() { done <- do(t, h, "GET", "example.com", "/", nil) }()
	<-arrived
	reg.Sync(nil) // the backend is removed while its request is in flight
	if !live["slow"].Removed() {
		t.Fatal("backend not marked removed")
	}
	close(release)
	resp := <-done
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "finished" {
		t.Fatalf("in-flight request on a removed backend: %d %q", resp.StatusCode, body)
	}
}

// TestClientCloseKeepsBackendConnection: a client's Connection: close
// does not cost the backend connection, which goes back to the pool.
func TestClientCloseKeepsBackendConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: named("live"), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"live", ln.Addr().String()})
	for range 5 {
		req := httptest.NewRequest("GET", "/", nil)
		req.Host, req.Close = "example.com", true
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d backend connections for 5 requests from closing clients, want 1 reused", n)
	}
}

// TestFailureLogThrottled: while a backend is down every request fails;
// the log says so once per logEvery, not once per request.
func TestFailureLogThrottled(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s := newSetup(t, UpstreamOptions{DialTimeout: time.Second}, Options{Log: log}, [2]string{"dead", closedAddr(t)})
	for range 20 {
		if resp := do(t, s.h, "GET", "example.com", "/", nil); resp.StatusCode != 502 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "backend failed"); n != 1 {
		t.Errorf("%d log lines for 20 failed requests, want 1:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
