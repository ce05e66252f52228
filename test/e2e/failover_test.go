package e2e

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends GET requests for one host through the proxy from several
// keep-alive clients until stopped, counting every outcome.
type load struct {
	stop     atomic.Bool
	total    atomic.Int64
	failures atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	served   map[string]int // X-Backend-Id -> responses
	firstErr string
}

func startLoad(t testing.TB, p *proxyProc, host string, workers int) *load {
	t.Helper()
	l := &load{served: map[string]int{}}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range workers {
		l.wg.Go(func() {
			for !l.stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, "http://"+p.HTTP+"/load", nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					l.fail("transport error: " + err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.total.Add(1)
				switch {
				case err != nil:
					l.fail("reading body: " + err.Error())
				case resp.StatusCode/100 != 2:
					l.fail("status " + resp.Status)
				default:
					l.mu.Lock()
					l.served[resp.Header.Get("X-Backend-Id")]++
					l.mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(func() {
		l.finish()
		tr.CloseIdleConnections()
	})
	return l
}

func (l *load) fail(msg string) {
	l.failures.Add(1)
	l.mu.Lock()
	if l.firstErr == "" {
		l.firstErr = msg
	}
	l.mu.Unlock()
}

// more waits until n more requests have completed.
func (l *load) more(t testing.TB, n int64, what string) {
	t.Helper()
	from := l.total.Load()
	eventually(t, waitTimeout, func() bool { return l.total.Load() >= from+n }, what)
}

// finish stops the load and waits for the clients.
func (l *load) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

// servedBy returns how many responses id has given so far.
func (l *load) servedBy(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served[id]
}

// TestFailoverUnderLoad is issue 3's check: under steady load, a backend
// killed with SIGKILL, an A/B switch and a rollback together cost zero
// failed requests; the killed backend is seen unhealthy, and when it comes
// back on the same port it is re-admitted and gets traffic again.
func TestFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	a1, a2 := startBackend(t, "a1"), startBackend(t, "a2")
	b1 := startBackend(t, "b1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"failover.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("a2", a2, "a"), be("b1", b1, "b")},
	})
	l := startLoad(t, p, "failover.example.com", 4)
	l.more(t, 200, "load before the kill")

	a1.kill() // SIGKILL: in-flight and pooled connections die with it
	healthOf := func(id string) string {
		var b backendObj
		if p.api(t, http.MethodGet, "/backends/"+id, nil, &b) != http.StatusOK {
			return ""
		}
		return b.Health
	}
	eventually(t, waitTimeout, func() bool { return healthOf("a1") == "unhealthy" }, "a1 marked unhealthy after SIGKILL")
	l.more(t, 200, "load after the kill")
	before := l.servedBy("a2")
	l.more(t, 100, "load on the survivor")
	if l.servedBy("a2") == before {
		t.Error("the surviving backend served nothing after the kill")
	}

	p.switchTag(t, "failover.example.com", "b")
	l.more(t, 100, "load after the switch")
	p.switchTag(t, "failover.example.com", "a")
	l.more(t, 100, "load after the rollback")

	// a1 comes back on the same port: the active checker re-admits it.
	_, port, _ := net.SplitHostPort(a1.Addr)
	back := &backendProc{process: startProcess(t, testbackendBin, port, "a1"), ID: "a1", Addr: a1.Addr}
	if !back.waitHealthy() {
		t.Fatalf("a1 did not restart on %s:\n%s", a1.Addr, back.out.String())
	}
	eventually(t, waitTimeout, func() bool { return healthOf("a1") == "healthy" }, "a1 re-admitted")
	served := l.servedBy("a1")
	l.more(t, 200, "load after re-admission")
	if l.servedBy("a1") == served {
		t.Error("a1 was re-admitted but got no traffic")
	}

	l.finish()
	if n := l.failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed; first: %s", n, l.total.Load(), l.firstErr)
	}
	t.Logf("%d requests, zero failures; served %v", l.total.Load(), l.served)
}
