package health

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
)

func TestPassiveWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		failures  int             // Options.PassiveFailures
		gaps      []time.Duration // time before each failure
		wantEject int             // index of the failure that ejects; -1 for none
	}{
		{name: "three quick", failures: 3, gaps: []time.Duration{0, 400 * time.Millisecond, 400 * time.Millisecond}, wantEject: 2},
		{name: "exactly the window", failures: 3, gaps: []time.Duration{0, 500 * time.Millisecond, 500 * time.Millisecond}, wantEject: 2},
		{name: "spread beyond the window", failures: 3, gaps: []time.Duration{0, 600 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond}, wantEject: -1},
		{name: "old ones expire, then a burst", failures: 3, gaps: []time.Duration{0, 2 * time.Second, 10 * time.Millisecond, 10 * time.Millisecond}, wantEject: 3},
		{name: "one is enough", failures: 1, gaps: []time.Duration{0}, wantEject: 0},
		{name: "disabled", failures: 0, gaps: []time.Duration{0, 0, 0, 0, 0, 0}, wantEject: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, _ := newChecker(t, Options{PassiveFailures: tt.failures, PassiveWindow: time.Second})
			clock := newFakeClock()
			c.clock = clock
			b := &backend.Backend{ID: "b1", Addr: "127.0.0.1:1"}
			b.SetHealth(backend.Healthy)
			c.Added(b) // no Run: passive accounting needs no goroutine
			for i, gap := range tt.gaps {
				clock.Advance(gap)
				c.Failure(b, errors.New("dial tcp: connection refused"))
				want := backend.Healthy
				if tt.wantEject >= 0 && i >= tt.wantEject {
					want = backend.Unhealthy
				}
				if b.Health() != want {
					t.Fatalf("after failure %d: %v, want %v", i, b.Health(), want)
				}
			}
			wantEjections := 0.0
			if tt.wantEject >= 0 {
				wantEjections = 1
			}
			if got := testutil.ToFloat64(c.m.ejections.WithLabelValues("b1", reasonPassive)); got != wantEjections {
				t.Errorf("passive ejections = %v, want %v", got, wantEjections)
			}
			wantFailures := float64(len(tt.gaps))
			if tt.failures == 0 {
				wantFailures = 0
			}
			if got := testutil.ToFloat64(c.m.passive.WithLabelValues("b1")); got != wantFailures {
				t.Errorf("passive failures = %v, want %v", got, wantFailures)
			}
		})
	}
}

func TestPassiveEjectionStatus(t *testing.T) {
	t.Parallel()
	c, _, _ := newChecker(t, Options{PassiveFailures: 2, PassiveWindow: time.Second})
	clock := newFakeClock()
	c.clock = clock
	b := &backend.Backend{ID: "b1", Addr: "127.0.0.1:1"}
	b.SetHealth(backend.Healthy)
	b.SetStatus(backend.Status{ConsecutivePasses: 7})
	c.Added(b)
	c.Failure(b, errors.New("first"))
	clock.Advance(time.Millisecond)
	c.Failure(b, errors.New("read: connection reset by peer"))
	st := b.Status()
	want := backend.Status{LastCheck: clock.Now(), LastError: "passive: read: connection reset by peer", ConsecutiveFailures: 1}
	if st != want || b.Health() != backend.Unhealthy || b.Routable() {
		t.Fatalf("after ejection: %v %+v, want unhealthy %+v", b.Health(), st, want)
	}
	if got := testutil.ToFloat64(c.m.healthy.WithLabelValues("b1", b.Addr)); got != 0 {
		t.Errorf("backend_healthy = %v, want 0", got)
	}

	// Already unhealthy: failures reset the passes but eject nothing new.
	b.SetStatus(backend.Status{ConsecutivePasses: 1})
	c.Failure(b, nil)
	c.Failure(b, nil)
	if st := b.Status(); st.ConsecutivePasses != 0 || st.LastError != "passive: failure" {
		t.Errorf("repeat ejection status = %+v", st)
	}
	if got := testutil.ToFloat64(c.m.ejections.WithLabelValues("b1", reasonPassive)); got != 1 {
		t.Errorf("passive ejections = %v, want 1", got)
	}
}

func TestPassiveIgnoresUnknownBackends(t *testing.T) {
	t.Parallel()
	c, _, _ := newChecker(t, Options{PassiveFailures: 1})
	stranger := &backend.Backend{ID: "x", Addr: "127.0.0.1:1"}
	c.Failure(stranger, errors.New("boom"))
	c.Failure(nil, errors.New("boom"))
	gone := &backend.Backend{ID: "gone", Addr: "127.0.0.1:2"}
	c.Added(gone)
	c.Removed(gone)
	c.Failure(gone, errors.New("boom"))
	for _, b := range []*backend.Backend{stranger, gone} {
		if b.Health() != backend.Unknown || b.Status() != (backend.Status{}) {
			t.Errorf("%s changed: %v %+v", b.ID, b.Health(), b.Status())
		}
	}
	if got := testutil.CollectAndCount(c.m.passive); got != 0 {
		t.Errorf("backend_passive_failures_total has %d series, want 0", got)
	}
}

// After a passive ejection an active check follows at once (no kick, the
// interval is an hour) and HealthyThreshold passes bring the backend back.
func TestPassiveEjectionThenActiveRecovery(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, rec := newChecker(t, Options{Interval: slow, HealthyThreshold: 2, PassiveFailures: 3, PassiveWindow: time.Minute})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	run(t, c)
	if e := rec.next(t, b); e.health != backend.Healthy {
		t.Fatalf("first check: %v", e.health)
	}
	for range 3 {
		c.Failure(b, errors.New("boom"))
	}
	if b.Health() != backend.Unhealthy {
		t.Fatalf("after passive failures: %v", b.Health())
	}
	e := rec.next(t, b) // the immediate follow-up check
	if !e.pass || e.health != backend.Unhealthy || e.status.ConsecutivePasses != 1 {
		t.Fatalf("follow-up check: pass %v, %v, %+v; want one pass, still unhealthy", e.pass, e.health, e.status)
	}
	c.kick(b)
	if e := rec.next(t, b); e.health != backend.Healthy || e.status.ConsecutivePasses != 2 {
		t.Fatalf("second pass: %v %+v, want healthy", e.health, e.status)
	}
	if got := testutil.ToFloat64(c.m.ejections.WithLabelValues("b1", reasonActive)); got != 0 {
		t.Errorf("active ejections = %v, want 0", got)
	}
}
