package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/backend"
	"fronttier/internal/clock/clocktest"
)

// waitFor is how long a condition may take to become true.
const waitFor = 5 * time.Second

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testServer is a backend whose /health status the test flips. It counts
// the checks it answered by outcome.
type testServer struct {
	srv    *httptest.Server
	status atomic.Int32 // answer of /health
	hang   atomic.Bool  // /health waits until the request is cancelled
	passes atomic.Int64 // 2xx answers to /health
	fails  atomic.Int64 // other answers to /health
	agent  atomic.Value // last User-Agent seen
	host   atomic.Value // last Host seen
	conns  atomic.Int64 // connections accepted
}

// newTestServer starts a server answering /health with status on addr
// ("" for any free port).
func newTestServer(t *testing.T, status int, addr string) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.status.Store(int32(status))
	ts.srv = httptest.NewUnstartedServer(http.HandlerFunc(ts.serve))
	ts.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ts.conns.Add(1)
		}
	}
	if addr != "" {
		var l net.Listener
		eventually(t, "listen on "+addr, func() bool {
			var err error
			l, err = net.Listen("tcp", addr)
			return err == nil
		})
		ts.srv.Listener.Close()
		ts.srv.Listener = l
	}
	ts.srv.Start()
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/health" {
		w.WriteHeader(http.StatusOK) // the application itself still serves
		return
	}
	ts.agent.Store(r.UserAgent())
	ts.host.Store(r.Host)
	if ts.hang.Load() {
		<-r.Context().Done()
		return
	}
	code := int(ts.status.Load())
	if code >= 200 && code < 300 {
		ts.passes.Add(1)
	} else {
		ts.fails.Add(1)
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte("status\n"))
}

// addr is the server's host:port.
func (ts *testServer) addr() string { return ts.srv.Listener.Addr().String() }

// recorder collects the checker's observe events.
type recorder struct {
	ch chan event
}

// newChecker returns a checker on a fresh registry with events recorded.
// Call before Run or Added: the hook must be set first.
func newChecker(t *testing.T, o Options) (*Checker, *prometheus.Registry, *recorder) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	c := New(o)
	rec := &recorder{ch: make(chan event, 1024)}
	c.observe = func(e event) {
		select {
		case rec.ch <- e:
		default: // tests that do not read events must not block the checker
		}
	}
	return c, reg, rec
}

// next returns the next recorded check of b.
func (r *recorder) next(t *testing.T, b *backend.Backend) event {
	t.Helper()
	timeout := time.NewTimer(waitFor)
	defer timeout.Stop()
	for {
		select {
		case e := <-r.ch:
			if e.b == b {
				return e
			}
		case <-timeout.C:
			t.Fatalf("no check of %s recorded", b.ID)
		}
	}
}

// run starts c.Run and returns a function that stops it and waits for Run
// to return; it also runs at cleanup.
func run(t *testing.T, c *Checker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// newFakeClock returns a fake clock for a checker, at a fixed time: the
// checker compares its clock with nothing outside.
func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}
