package health

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
	"fronttier/internal/clock/clocktest"
	tu "fronttier/internal/testutil"
)

func TestHoldFor(t *testing.T) {
	t.Parallel()
	const maxDuration = time.Duration(math.MaxInt64)
	tests := []struct {
		name        string
		n           int
		base, limit time.Duration
		want        time.Duration
	}{
		{name: "first", n: 1, base: 10 * time.Second, limit: 300 * time.Second, want: 10 * time.Second},
		{name: "second doubles", n: 2, base: 10 * time.Second, limit: 300 * time.Second, want: 20 * time.Second},
		{name: "fifth", n: 5, base: 10 * time.Second, limit: 300 * time.Second, want: 160 * time.Second},
		{name: "sixth capped", n: 6, base: 10 * time.Second, limit: 300 * time.Second, want: 300 * time.Second},
		{name: "far beyond the cap", n: 1000, base: 10 * time.Second, limit: 300 * time.Second, want: 300 * time.Second},
		{name: "limit equal to base", n: 3, base: 10 * time.Second, limit: 10 * time.Second, want: 10 * time.Second},
		{name: "no overflow", n: 200, base: time.Hour, limit: maxDuration, want: maxDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := holdFor(tt.n, tt.base, tt.limit); got != tt.want {
				t.Errorf("holdFor(%d, %v, %v) = %v, want %v", tt.n, tt.base, tt.limit, got, tt.want)
			}
		})
	}
}

// holdRig is one backend checked by a checker on a fake clock: the checks
// are real (a test server answers them), the timetable is the fake
// clock's. With an hour's interval, checks happen only when the test kicks
// them, after a passive ejection, and when a hold ends; each is waited for
// through the observe hook, never by sleeping.
type holdRig struct {
	t     *testing.T
	c     *Checker
	clock *clocktest.Clock
	ts    *testServer
	b     *backend.Backend
	rec   *recorder
	logs  *tu.SyncBuffer
}

// newHoldRig starts checking a passing backend with o (an hour's interval,
// one passive failure ejects) and waits for its first check.
func newHoldRig(t *testing.T, o Options) *holdRig {
	t.Helper()
	r := &holdRig{t: t, clock: newFakeClock(), ts: newTestServer(t, http.StatusOK, ""), logs: &tu.SyncBuffer{}}
	o.Interval, o.PassiveFailures = slow, 1
	o.Log = slog.New(slog.NewTextHandler(r.logs, nil))
	r.c, _, r.rec = newChecker(t, o)
	r.c.clock = r.clock
	r.b = &backend.Backend{ID: "b1", Addr: r.ts.addr()}
	r.c.Added(r.b)
	run(t, r.c)
	if e := r.rec.next(t, r.b); e.health != backend.Healthy {
		t.Fatalf("first check: %v, want healthy", e.health)
	}
	return r
}

// ejectPassive reports a failure of real traffic, which ejects the
// backend, and returns the check that follows at once.
func (r *holdRig) ejectPassive() event {
	r.t.Helper()
	r.c.Failure(r.b, errors.New("read: connection reset by peer"))
	if h := r.b.Health(); h != backend.Unhealthy {
		r.t.Fatalf("after a passive failure: %v, want unhealthy", h)
	}
	return r.rec.next(r.t, r.b)
}

// kick makes the test server answer status and returns the check kicked.
func (r *holdRig) kick(status int) event {
	r.t.Helper()
	r.ts.status.Store(int32(status))
	r.c.kick(r.b)
	return r.rec.next(r.t, r.b)
}

// hold returns backend_ejection_hold_seconds as a duration.
func (r *holdRig) hold() time.Duration {
	return time.Duration(testutil.ToFloat64(r.c.m.hold.WithLabelValues(r.b.ID)) * float64(time.Second))
}

// expect fails the test unless e's health is want.
func (r *holdRig) expect(step string, e event, want backend.Health) {
	r.t.Helper()
	if e.health != want || r.b.Health() != want {
		r.t.Fatalf("%s: check says %v (pass %v, %+v), backend %v; want %v", step, e.health, e.pass, e.status, r.b.Health(), want)
	}
}

// An ejected backend that passes HealthyThreshold checks before its hold
// ends stays out until the hold ends, and comes back then (by a check the
// scheduler makes when the hold ends, without a kick) if that check passes
// too. EjectionBase zero is the old rule: back after HealthyThreshold
// passes.
func TestEjectionHold(t *testing.T) {
	t.Parallel()
	const base = 10 * time.Second
	tests := []struct {
		name      string
		base      time.Duration
		active    bool // ejected by a failing active check, not by real traffic
		reload    bool // SetOptions just before the hold ends re-times the waiting check
		failAtEnd bool // the check made when the hold ends fails
	}{
		{name: "passive ejection held", base: base},
		{name: "active ejection held", base: base, active: true},
		{name: "reload during the hold", base: base, reload: true},
		{name: "failing when the hold ends", base: base, failAtEnd: true},
		{name: "holds off", base: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := Options{HealthyThreshold: 2, UnhealthyThreshold: 1, EjectionBase: tt.base, EjectionMax: 5 * time.Minute}
			r := newHoldRig(t, o)
			if tt.active {
				r.expect("failing check", r.kick(http.StatusServiceUnavailable), backend.Unhealthy)
				r.expect("pass 1", r.kick(http.StatusOK), backend.Unhealthy)
			} else {
				r.expect("pass 1 (follow-up)", r.ejectPassive(), backend.Unhealthy)
			}
			if got := r.hold(); got != tt.base {
				t.Errorf("backend_ejection_hold_seconds = %v, want %v", got, tt.base)
			}

			e := r.kick(http.StatusOK)
			if tt.base == 0 {
				r.expect("pass 2 without holds", e, backend.Healthy)
				if strings.Contains(r.logs.String(), "hold=") {
					t.Errorf("a hold was logged with holds off:\n%s", r.logs)
				}
				return
			}
			r.expect("pass 2, held", e, backend.Unhealthy)
			r.clock.Advance(tt.base - time.Second)
			r.expect("pass 3, a second before the hold ends", r.kick(http.StatusOK), backend.Unhealthy)
			if tt.reload {
				p := r.c.probeOf(r.b)
				eventually(t, "the backend waiting for its next check", func() bool {
					r.c.sched.mu.Lock()
					defer r.c.sched.mu.Unlock()
					return p.slot.index >= 0
				})
				r.c.SetOptions(o)
			}

			want := backend.Healthy
			if tt.failAtEnd {
				want = backend.Unhealthy
				r.ts.status.Store(http.StatusServiceUnavailable)
			}
			r.clock.Advance(time.Second)
			e = r.rec.next(t, r.b) // the check made when the hold ends
			r.expect("check when the hold ends", e, want)
			if got := r.hold(); got != 0 {
				t.Errorf("backend_ejection_hold_seconds after the hold = %v, want 0", got)
			}
			if !tt.failAtEnd && e.status.ConsecutivePasses != 4 {
				t.Errorf("re-admitted after %d passes, want 4 (two during the hold)", e.status.ConsecutivePasses)
			}
			if tt.failAtEnd {
				// The hold is over: HealthyThreshold passes bring it back.
				r.expect("pass 1 after the hold", r.kick(http.StatusOK), backend.Unhealthy)
				r.expect("pass 2 after the hold", r.kick(http.StatusOK), backend.Healthy)
			}

			logs := r.logs.String()
			for _, want := range []string{
				`msg="backend unhealthy"`, "hold=10s ejection=1",
				`msg="backend healthy"`,
			} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %q:\n%s", want, logs)
				}
			}
			if readmit := "after a hold of 10s (ejection 1)"; strings.Contains(logs, readmit) == tt.failAtEnd {
				t.Errorf("logs have %q: %v, want %v:\n%s", readmit, !tt.failAtEnd, tt.failAtEnd, logs)
			}
		})
	}
}

// Each ejection in a row doubles the hold, up to EjectionMax; a backend
// that stays routable for EjectionMax starts again at EjectionBase.
func TestEjectionBackoff(t *testing.T) {
	t.Parallel()
	type ejection struct {
		up   time.Duration // how long the backend stays routable before this ejection
		hold time.Duration // the hold it should get
	}
	const s = time.Second
	tests := []struct {
		name        string
		base, limit time.Duration
		ejections   []ejection
	}{
		{name: "doubles", base: 10 * s, limit: 5 * time.Minute,
			ejections: []ejection{{0, 10 * s}, {0, 20 * s}, {5 * s, 40 * s}, {0, 80 * s}}},
		{name: "capped", base: 10 * s, limit: 30 * s,
			ejections: []ejection{{0, 10 * s}, {0, 20 * s}, {0, 30 * s}, {0, 30 * s}}},
		{name: "starts again after staying routable for the maximum", base: 10 * s, limit: 60 * s,
			ejections: []ejection{{0, 10 * s}, {0, 20 * s}, {60 * s, 10 * s}, {0, 20 * s}}},
		{name: "a little less than the maximum is not enough", base: 10 * s, limit: 60 * s,
			ejections: []ejection{{0, 10 * s}, {0, 20 * s}, {59 * s, 40 * s}, {59 * s, 60 * s}, {61 * s, 10 * s}}},
		{name: "holds off", base: 0, limit: 60 * s,
			ejections: []ejection{{0, 0}, {0, 0}, {0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newHoldRig(t, Options{HealthyThreshold: 2, EjectionBase: tt.base, EjectionMax: tt.limit})
			for i, ej := range tt.ejections {
				r.clock.Advance(ej.up)
				r.expect("follow-up check", r.ejectPassive(), backend.Unhealthy)
				if got := r.hold(); got != ej.hold {
					t.Fatalf("ejection %d: hold %v, want %v", i+1, got, ej.hold)
				}
				if ej.hold == 0 {
					r.expect("pass 2 without holds", r.kick(http.StatusOK), backend.Healthy)
					continue
				}
				r.expect("pass 2, held", r.kick(http.StatusOK), backend.Unhealthy)
				r.clock.Advance(ej.hold - time.Millisecond)
				r.expect("just before the hold ends", r.kick(http.StatusOK), backend.Unhealthy)
				r.clock.Advance(time.Millisecond)
				r.expect("when the hold ends", r.rec.next(t, r.b), backend.Healthy)
			}
			want := float64(len(tt.ejections))
			if got := testutil.ToFloat64(r.c.m.ejections.WithLabelValues("b1", reasonPassive)); got != want {
				t.Errorf("backend_ejections_total{reason=passive} = %v, want %v", got, want)
			}
		})
	}
}

// Setting EjectionBase to zero on a reload releases a hold in force at the
// backend's next check.
func TestEjectionHoldTurnedOff(t *testing.T) {
	t.Parallel()
	o := Options{HealthyThreshold: 2, EjectionBase: time.Minute}
	r := newHoldRig(t, o)
	r.expect("pass 1 (follow-up)", r.ejectPassive(), backend.Unhealthy)
	r.expect("pass 2, held", r.kick(http.StatusOK), backend.Unhealthy)
	o.EjectionBase = 0
	r.c.SetOptions(o)
	r.expect("pass 3, holds off", r.kick(http.StatusOK), backend.Healthy)
	if got := r.hold(); got != 0 {
		t.Errorf("backend_ejection_hold_seconds = %v, want 0", got)
	}
}
