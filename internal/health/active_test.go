package health

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"fronttier/internal/backend"
)

// slow is an interval that never elapses in a test: checks happen only at
// start and when kicked, so they can be counted exactly.
const slow = time.Hour

func TestFirstCheckDecides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		want    backend.Health
		wantErr string
	}{
		{name: "pass", status: http.StatusOK, want: backend.Healthy},
		{name: "no content is a pass", status: http.StatusNoContent, want: backend.Healthy},
		{name: "fail", status: http.StatusServiceUnavailable, want: backend.Unhealthy, wantErr: "status 503"},
		{name: "redirect is a failure", status: http.StatusFound, want: backend.Unhealthy, wantErr: "status 302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tt.status, "")
			// Thresholds far away: only the first-check rule can decide.
			c, _, rec := newChecker(t, Options{Interval: slow, UnhealthyThreshold: 10, HealthyThreshold: 10})
			b := &backend.Backend{ID: "b1", Addr: ts.addr()}
			if b.Health() != backend.Unknown || !b.Routable() {
				t.Fatalf("new backend: health %v, routable %v", b.Health(), b.Routable())
			}
			before := time.Now()
			c.Added(b)
			run(t, c)
			e := rec.next(t, b)
			if e.health != tt.want || b.Health() != tt.want {
				t.Fatalf("after first check: event %v, backend %v, want %v", e.health, b.Health(), tt.want)
			}
			st := b.Status()
			if st.LastError != tt.wantErr {
				t.Errorf("LastError = %q, want %q", st.LastError, tt.wantErr)
			}
			if st.LastCheck.Before(before) || st.LastCheck.After(time.Now()) {
				t.Errorf("LastCheck = %v, not during the test", st.LastCheck)
			}
			if got := st.ConsecutivePasses + st.ConsecutiveFailures; got != 1 {
				t.Errorf("counters = %+v, want one check", st)
			}
			if ua, _ := ts.agent.Load().(string); ua != userAgent {
				t.Errorf("User-Agent = %q, want %q", ua, userAgent)
			}
			if host, _ := ts.host.Load().(string); host != b.Addr {
				t.Errorf("Host = %q, want %q", host, b.Addr)
			}
		})
	}
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		unhealthy, healthy    int
		wantFails, wantPasses int
	}{
		{name: "defaults", unhealthy: 0, healthy: 0, wantFails: DefaultUnhealthyThreshold, wantPasses: DefaultHealthyThreshold},
		{name: "one each", unhealthy: 1, healthy: 1, wantFails: 1, wantPasses: 1},
		{name: "four down two up", unhealthy: 4, healthy: 2, wantFails: 4, wantPasses: 2},
		{name: "two down five up", unhealthy: 2, healthy: 5, wantFails: 2, wantPasses: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, http.StatusOK, "")
			c, _, rec := newChecker(t, Options{Interval: slow, UnhealthyThreshold: tt.unhealthy, HealthyThreshold: tt.healthy})
			b := &backend.Backend{ID: "b1", Addr: ts.addr()}
			run(t, c)
			c.Added(b)
			if e := rec.next(t, b); e.health != backend.Healthy {
				t.Fatalf("first check: %v, want healthy", e.health)
			}

			// Down: exactly wantFails failures, none fewer.
			ts.status.Store(http.StatusServiceUnavailable)
			for i := 1; i <= tt.wantFails; i++ {
				c.kick(b)
				e := rec.next(t, b)
				if e.pass || e.status.ConsecutiveFailures != i || e.status.ConsecutivePasses != 0 {
					t.Fatalf("failure %d: pass %v, status %+v", i, e.pass, e.status)
				}
				want := backend.Healthy
				if i == tt.wantFails {
					want = backend.Unhealthy
				}
				if e.health != want {
					t.Fatalf("after %d failures: %v, want %v", i, e.health, want)
				}
			}
			if got := ts.fails.Load(); got != int64(tt.wantFails) {
				t.Errorf("server answered %d failing checks, want %d", got, tt.wantFails)
			}

			// Up: exactly wantPasses passes.
			ts.status.Store(http.StatusOK)
			for i := 1; i <= tt.wantPasses; i++ {
				c.kick(b)
				e := rec.next(t, b)
				if !e.pass || e.status.ConsecutivePasses != i || e.status.ConsecutiveFailures != 0 || e.status.LastError != "" {
					t.Fatalf("pass %d: pass %v, status %+v", i, e.pass, e.status)
				}
				want := backend.Unhealthy
				if i == tt.wantPasses {
					want = backend.Healthy
				}
				if e.health != want {
					t.Fatalf("after %d passes: %v, want %v", i, e.health, want)
				}
			}
			if got := ts.passes.Load(); got != int64(1+tt.wantPasses) {
				t.Errorf("server answered %d passing checks, want %d", got, 1+tt.wantPasses)
			}
			// Keep-alives are off: every check dialed a fresh connection.
			if got, want := ts.conns.Load(), ts.passes.Load()+ts.fails.Load(); got != want {
				t.Errorf("%d connections for %d checks, want one each", got, want)
			}
		})
	}
}

// A pass between failures restarts the count.
func TestThresholdNeedsConsecutiveFailures(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, rec := newChecker(t, Options{Interval: slow, UnhealthyThreshold: 3})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	rec.next(t, b)
	for i, code := range []int{503, 503, 200, 503, 503} {
		ts.status.Store(int32(code))
		c.kick(b)
		if e := rec.next(t, b); e.health != backend.Healthy {
			t.Fatalf("check %d (%d): %v, want still healthy", i, code, e.health)
		}
	}
	ts.status.Store(503)
	c.kick(b)
	if e := rec.next(t, b); e.health != backend.Unhealthy {
		t.Fatalf("third consecutive failure: %v, want unhealthy", e.health)
	}
}

func TestChecksContinueWhileUnhealthy(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusServiceUnavailable, "")
	c, _, _ := newChecker(t, Options{Interval: 20 * time.Millisecond, HealthyThreshold: 2})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	eventually(t, "unhealthy", func() bool { return b.Health() == backend.Unhealthy })
	n := ts.fails.Load()
	eventually(t, "checks while unhealthy", func() bool { return ts.fails.Load() >= n+3 })
	if st := b.Status(); st.ConsecutiveFailures < 3 || st.LastError != "status 503" {
		t.Errorf("status while unhealthy = %+v", st)
	}
	ts.status.Store(http.StatusOK)
	eventually(t, "healthy again", func() bool { return b.Health() == backend.Healthy })
	if st := b.Status(); st.ConsecutivePasses < 2 || st.LastError != "" {
		t.Errorf("status after recovery = %+v", st)
	}
}

// The application still answers, but its health endpoint says it should not
// get traffic: the endpoint wins.
func TestFailingHealthEndpointWhileServing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, _ := newChecker(t, Options{Interval: 20 * time.Millisecond, UnhealthyThreshold: 3})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	eventually(t, "healthy", func() bool { return b.Health() == backend.Healthy })
	ts.status.Store(http.StatusInternalServerError)
	eventually(t, "unhealthy", func() bool { return b.Health() == backend.Unhealthy })
	if st := b.Status(); st.ConsecutiveFailures < 3 || st.LastError != "status 500" {
		t.Errorf("status = %+v", st)
	}
	resp, err := http.Get(ts.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("application answered %d, want it still serving", resp.StatusCode)
	}
}

func TestKilledServerReadmittedOnSamePort(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	addr := ts.addr()
	c, _, _ := newChecker(t, Options{Interval: 20 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 2})
	b := &backend.Backend{ID: "b1", Addr: addr}
	c.Added(b)
	run(t, c)
	eventually(t, "healthy", func() bool { return b.Health() == backend.Healthy })

	ts.srv.Close()
	eventually(t, "unhealthy after kill", func() bool { return b.Health() == backend.Unhealthy })
	if st := b.Status(); !strings.Contains(st.LastError, "connection refused") || strings.Contains(st.LastError, "http://") {
		t.Errorf("LastError = %q, want a short connection error", st.LastError)
	}

	again := newTestServer(t, http.StatusOK, addr)
	eventually(t, "healthy on the same port", func() bool { return b.Health() == backend.Healthy })
	if again.passes.Load() < 2 {
		t.Errorf("new server answered %d checks, want at least the healthy threshold", again.passes.Load())
	}
}

func TestTimeoutIsFailure(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	ts.hang.Store(true)
	c, _, rec := newChecker(t, Options{Interval: slow, Timeout: 30 * time.Millisecond})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	e := rec.next(t, b)
	if e.pass || e.health != backend.Unhealthy {
		t.Fatalf("hanging check: pass %v, health %v", e.pass, e.health)
	}
	if got, want := b.Status().LastError, "timeout after 30ms"; got != want {
		t.Errorf("LastError = %q, want %q", got, want)
	}
}

func TestPathOption(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, rec := newChecker(t, Options{Interval: slow, Path: "ready"}) // no slash: gets one
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	// The test server answers 200 on every path but /health, which it
	// counts; /ready must have been probed.
	if e := rec.next(t, b); !e.pass {
		t.Fatalf("check of /ready failed: %+v", e.status)
	}
	if ts.passes.Load() != 0 {
		t.Fatalf("/health was probed, want /ready")
	}
}

func TestSetOptionsAppliesToNextCheck(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, rec := newChecker(t, Options{Interval: slow, UnhealthyThreshold: 5})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	rec.next(t, b)
	ts.status.Store(http.StatusServiceUnavailable)

	// The new, short interval re-arms the waiting timer (no kick), and the
	// new threshold of 1 decides at the next check.
	c.SetOptions(Options{Interval: 20 * time.Millisecond, UnhealthyThreshold: 1})
	e := rec.next(t, b)
	if e.health != backend.Unhealthy || e.status.ConsecutiveFailures != 1 {
		t.Fatalf("after reload: health %v, status %+v", e.health, e.status)
	}
	if o := c.options(); o.Timeout != DefaultTimeout || o.Path != DefaultPath || o.HealthyThreshold != DefaultHealthyThreshold {
		t.Errorf("reload did not default zero fields: %+v", o)
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	got := Options{PassiveFailures: 5}.withDefaults()
	want := Options{Interval: 10 * time.Second, Timeout: 5 * time.Second, UnhealthyThreshold: 3,
		HealthyThreshold: 2, Path: "/health", PassiveFailures: 5, PassiveWindow: 10 * time.Second}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}

	tests := []struct {
		name                string
		base, limit         time.Duration
		wantBase, wantLimit time.Duration
	}{
		{name: "off", base: 0, limit: time.Minute, wantBase: 0, wantLimit: time.Minute},
		{name: "negative is off", base: -time.Second, limit: 0, wantBase: 0, wantLimit: 0},
		{name: "default maximum", base: 10 * time.Second, limit: 0, wantBase: 10 * time.Second, wantLimit: DefaultEjectionMax},
		{name: "maximum below base", base: 10 * time.Second, limit: 5 * time.Second, wantBase: 10 * time.Second, wantLimit: 10 * time.Second},
		{name: "base above the default maximum", base: 10 * time.Minute, limit: 0, wantBase: 10 * time.Minute, wantLimit: 10 * time.Minute},
		{name: "both given", base: 10 * time.Second, limit: time.Minute, wantBase: 10 * time.Second, wantLimit: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{EjectionBase: tt.base, EjectionMax: tt.limit}.withDefaults()
			if o.EjectionBase != tt.wantBase || o.EjectionMax != tt.wantLimit {
				t.Errorf("EjectionBase, EjectionMax = %v, %v; want %v, %v", o.EjectionBase, o.EjectionMax, tt.wantBase, tt.wantLimit)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	for range 1000 {
		if d := jitter(time.Second); d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("jitter(1s) = %v, want within ±10%%", d)
		}
	}
}
