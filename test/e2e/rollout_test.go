package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rolloutObj is the API's rollout object.
type rolloutObj struct {
	Domain   string    `json:"domain"`
	FromTag  string    `json:"from_tag"`
	ToTag    string    `json:"to_tag"`
	State    string    `json:"state"`
	Step     int       `json:"step"`
	Percent  float64   `json:"percent"`
	Steps    []float64 `json:"steps"`
	Reason   string    `json:"reason"`
	Canary   figures   `json:"canary"`
	Baseline figures   `json:"baseline"`
}

type figures struct {
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P99Ms     float64 `json:"p99_ms"`
}

// rolloutDeadline bounds how long a rollout of a few one-second steps
// may take under load on a slow machine.
const rolloutDeadline = 90 * time.Second

// webhook records the events a proxy posts to it.
type webhook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []string // "event state"
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var e struct {
			Event   string `json:"event"`
			Rollout struct {
				State string `json:"state"`
			} `json:"rollout"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &e); err == nil {
			w.mu.Lock()
			w.events = append(w.events, e.Event+" "+e.Rollout.State)
			w.mu.Unlock()
		}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) has(event string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if strings.HasPrefix(e, event+" ") {
			return true
		}
	}
	return false
}

// rolloutProxy starts a1 (tag a) and b1 (tag b, with canaryFlags) and a
// proxy routing app.test to tag a, posting rollout events to hook.
func rolloutProxy(t *testing.T, hook *webhook, canaryFlags ...string) *proxyProc {
	t.Helper()
	a1 := startBackend(t, "a1")
	b1 := startBackend(t, "b1", canaryFlags...)
	c := conf{Domains: []domainConf{{"app.test", "a"}}, Backends: []backendConf{be("a1", a1, "a"), be("b1", b1, "b")}}
	if hook != nil {
		c.Extra = fmt.Sprintf("\n[rollouts]\nwebhook_url = %q\n", hook.srv.URL)
	}
	return newProxy(t, c)
}

// rolloutLoad is traffic sent to app.test by a few workers until stopped: every
// answer that is not a 200 is counted, apart from the canary's own
// injected failures.
type rolloutLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   atomic.Int64
	bad    atomic.Int64
	mu     sync.Mutex
	first  string // the first bad answer
}

func startRolloutLoad(p *proxyProc, workers int) *rolloutLoad {
	return startRolloutLoadWith(p, workers, nil)
}

// startRolloutLoadWith is startRolloutLoad with headers hdr on every
// request.
func startRolloutLoadWith(p *proxyProc, workers int, hdr http.Header) *rolloutLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rolloutLoad{cancel: cancel}
	for range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				resp, body, err := p.request(http.MethodGet, "app.test", "/", nil, hdr)
				l.sent.Add(1)
				switch {
				case err != nil:
					l.fail(err.Error())
				case resp.StatusCode == http.StatusOK:
				case resp.Header.Get("X-Injected-Failure") == "1":
				default:
					l.fail(fmt.Sprintf("%s from %q: %q", resp.Status, resp.Header.Get("X-Backend-Id"), body))
				}
			}
		})
	}
	return l
}

func (l *rolloutLoad) fail(what string) {
	l.bad.Add(1)
	l.mu.Lock()
	if l.first == "" {
		l.first = what
	}
	l.mu.Unlock()
}

// stop ends the load and fails the test if any request failed.
func (l *rolloutLoad) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if n := l.bad.Load(); n > 0 {
		t.Errorf("%d of %d requests failed; the first: %s", n, l.sent.Load(), l.first)
	}
}

// getRollout returns app.test's rollout.
func getRollout(t *testing.T, p *proxyProc) rolloutObj {
	t.Helper()
	var r rolloutObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/app.test/rollout", nil, &r)
	return r
}

// waitRollout polls app.test's rollout until done holds, up to
// rolloutDeadline, and returns it.
func waitRollout(t *testing.T, p *proxyProc, done func(r rolloutObj) bool) rolloutObj {
	t.Helper()
	deadline := time.Now().Add(rolloutDeadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r := getRollout(t, p)
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout not done within %v: %+v", rolloutDeadline, r)
		}
		<-tick.C
	}
}

func final(r rolloutObj) bool { return r.State != "running" && r.State != "paused" }

func startRollout(t *testing.T, p *proxyProc, minRequests int) rolloutObj {
	t.Helper()
	var r rolloutObj
	p.mustAPI(t, http.StatusCreated, http.MethodPost, "/domains/app.test/rollout", map[string]any{
		"to_tag": "b", "steps": []float64{10, 50, 100}, "step_secs": 1,
		"max_error_rate": 0.01, "max_p99_ms": 5000, "min_requests": minRequests,
	}, &r)
	if r.State != "running" || r.FromTag != "a" || r.Percent != 10 {
		t.Fatalf("started rollout: %+v", r)
	}
	return r
}

// TestRolloutRollsBackFailingCanary: a canary failing 5% of its requests
// is rolled back at its first gate, with a reason naming the error rate;
// the stable version serves every request throughout.
func TestRolloutRollsBackFailingCanary(t *testing.T) {
	t.Parallel()
	hook := newWebhook(t)
	p := rolloutProxy(t, hook, "-fail-rate", "0.05")
	l := startRolloutLoad(p, 4)
	startRollout(t, p, 20)
	r := waitRollout(t, p, final)
	l.stop(t)
	if r.State != "rolled_back" || r.Step != 0 || r.Percent != 0 || !strings.Contains(r.Reason, "error_rate") || r.Canary.Errors == 0 {
		t.Fatalf("rollout = %+v, want rolled_back at step 0 for its error rate", r)
	}
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/app.test", nil, &d)
	if d.Canary != nil || d.EnabledBackendsTag != "a" {
		t.Fatalf("domain after rollback: %+v", d)
	}
	for range 20 {
		if id := p.backendOf(t, "app.test"); id != "a1" {
			t.Fatalf("after rollback a request went to %q", id)
		}
	}
	eventually(t, waitTimeout, func() bool { return hook.has("rolled_back") }, "webhook told of the rollback")
	var body string
	eventually(t, waitTimeout, func() bool {
		_, data, err := p.apiRaw(http.MethodGet, "/metrics", "", nil)
		body = string(data)
		return err == nil && strings.Contains(body, `proxy_rollout_transitions_total{domain="app.test",to="rolled_back"} 1`)
	}, "proxy_rollout_transitions_total counts the rollback")
	if !strings.Contains(body, `proxy_rollout_state{domain="app.test",state="rolled_back"} 1`) {
		t.Errorf("metrics lack proxy_rollout_state rolled_back:\n%s", body)
	}
}

// TestRolloutCompletes: a healthy canary goes through every step;
// app.test ends on tag b, with no canary, and the log says "Switched
// backend tag"; no request fails on the way.
func TestRolloutCompletes(t *testing.T) {
	t.Parallel()
	hook := newWebhook(t)
	p := rolloutProxy(t, hook)
	l := startRolloutLoad(p, 4)
	startRollout(t, p, 5)
	r := waitRollout(t, p, final)
	l.stop(t)
	if r.State != "completed" || r.Percent != 100 || r.Step != 2 {
		t.Fatalf("rollout = %+v, want completed", r)
	}
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/app.test", nil, &d)
	if d.Canary != nil || d.EnabledBackendsTag != "b" {
		t.Fatalf("domain after completion: %+v", d)
	}
	p.waitLog(t, msgIs("Switched backend tag"), `"Switched backend tag"`)
	for range 20 {
		if id := p.backendOf(t, "app.test"); id != "b1" {
			t.Fatalf("after completion a request went to %q", id)
		}
	}
	eventually(t, waitTimeout, func() bool { return hook.has("step") && hook.has("completed") }, "webhook told of the steps and the completion")
}

// TestRolloutResumesAfterRestart: a rollout waiting at its first step
// (too little traffic) survives a restart in the configuration file, goes
// on from its stored step with its window restarted, and completes.
func TestRolloutResumesAfterRestart(t *testing.T) {
	t.Parallel()
	p := rolloutProxy(t, nil)
	startRollout(t, p, 5)
	waitRollout(t, p, func(r rolloutObj) bool { return strings.Contains(r.Reason, "extended") })
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, waitTimeout); code != 0 {
		t.Fatalf("fronttier exited %d", code)
	}
	if data, err := os.ReadFile(p.Config); err != nil || !strings.Contains(string(data), "[virtual_hosts.rollout]") {
		t.Fatalf("the configuration file lacks the rollout (%v):\n%s", err, data)
	}
	p = p.restart(t)
	p.waitLog(t, msgIs("Rollout step window restarted"), "the step window restarted")
	r := getRollout(t, p)
	if r.State != "running" || r.Step != 0 || r.Percent != 10 {
		t.Fatalf("after the restart: %+v, want running at step 0", r)
	}
	l := startRolloutLoad(p, 4)
	r = waitRollout(t, p, final)
	l.stop(t)
	if r.State != "completed" {
		t.Fatalf("rollout after the restart = %+v, want completed", r)
	}
}
