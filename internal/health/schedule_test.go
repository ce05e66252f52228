package health

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
)

// checkLog records when, by the checker's clock, each backend's recorded
// active checks started.
type checkLog struct {
	mu sync.Mutex
	at map[*backend.Backend][]time.Time
}

// watchChecks installs a checkLog as c's observe hook (before Run).
func watchChecks(c *Checker) *checkLog {
	l := &checkLog{at: make(map[*backend.Backend][]time.Time)}
	c.observe = func(e event) {
		l.mu.Lock()
		l.at[e.b] = append(l.at[e.b], e.status.LastCheck)
		l.mu.Unlock()
	}
	return l
}

// times returns when b's recorded checks started.
func (l *checkLog) times(b *backend.Backend) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at[b]...)
}

// count returns how many checks of b were recorded.
func (l *checkLog) count(b *backend.Backend) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at[b])
}

// fewest returns the smallest number of checks recorded for any of bs.
func (l *checkLog) fewest(bs []*backend.Backend) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	least := -1
	for _, b := range bs {
		if n := len(l.at[b]); least < 0 || n < least {
			least = n
		}
	}
	return least
}

// hangServer answers no /health request: each waits until the checker
// gives up. It counts the requests and the most it held at once.
type hangServer struct {
	srv                    *httptest.Server
	total, inflight, worst atomic.Int64
}

func newHangServer(t *testing.T) *hangServer {
	t.Helper()
	h := &hangServer{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		h.total.Add(1)
		n := h.inflight.Add(1)
		defer h.inflight.Add(-1)
		for w := h.worst.Load(); n > w && !h.worst.CompareAndSwap(w, n); w = h.worst.Load() {
		}
		<-r.Context().Done()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hangServer) addr() string { return h.srv.Listener.Addr().String() }

// blackHole returns the address of a listener that never accepts: a check
// of it connects (or waits for the handshake once the backlog is full) and
// then waits for its timeout, with no server goroutine behind it.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// backends returns n backends named prefix0.. at addr.
func backends(prefix string, n int, addr string) []*backend.Backend {
	bs := make([]*backend.Backend, n)
	for i := range bs {
		bs[i] = &backend.Backend{ID: fmt.Sprint(prefix, i), Addr: addr}
	}
	return bs
}

// peak returns the most checks c ever had in flight at once.
func peak(c *Checker) int {
	c.sched.mu.Lock()
	defer c.sched.mu.Unlock()
	return c.sched.peak
}

func TestWorkerBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		n                 int
		timeout, interval time.Duration
		atOnce, late      int
	}{
		{name: "none", n: 0, timeout: 5 * time.Second, interval: 10 * time.Second, atOnce: 0, late: 0},
		{name: "fewer than the minimum", n: 10, timeout: 5 * time.Second, interval: 10 * time.Second, atOnce: 10, late: 10},
		{name: "late bound below the minimum", n: 100, timeout: time.Second, interval: 10 * time.Second, atOnce: 64, late: 64},
		{name: "defaults, 10k backends", n: 10000, timeout: 5 * time.Second, interval: 10 * time.Second, atOnce: 64, late: 3334},
		{name: "timeout longer than interval", n: 1000, timeout: 30 * time.Second, interval: time.Second, atOnce: 64, late: 968},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := schedule{n: tt.n}
			atOnce, late := s.bounds(&Options{Timeout: tt.timeout, Interval: tt.interval})
			if atOnce != tt.atOnce || late != tt.late {
				t.Errorf("bounds = %d, %d; want %d, %d", atOnce, late, tt.atOnce, tt.late)
			}
			if late > tt.n {
				t.Errorf("late bound %d exceeds the %d backends", late, tt.n)
			}
		})
	}
}

// Many backends share a few workers while two backends that hang hold a
// worker each: every other backend is still checked each time it falls
// due, and a hanging backend is never checked twice at once, however often
// it is kicked. The clock is fake and stands still while checks run, so
// "on time" is exact and does not depend on how busy the machine is: each
// round, every fast backend is checked before the clock moves on, at the
// very time it fell due.
func TestScheduleFewWorkers(t *testing.T) {
	t.Parallel()
	const (
		n        = 100
		workers  = 4
		interval = 10 * time.Second
		rounds   = 4
	)
	// A round moves the clock by the longest jittered interval, so every
	// fast backend falls due exactly once per round.
	const step = interval + interval/10
	fast := newTestServer(t, http.StatusOK, "")
	hang := []*hangServer{newHangServer(t), newHangServer(t)}
	clock := newFakeClock()
	c, _, _ := newChecker(t, Options{Interval: interval, Timeout: time.Minute})
	c.clock = clock
	c.sched.minWorkers, c.sched.maxWorkers = workers, workers
	log := watchChecks(c)
	bs := backends("fast", n, fast.addr())
	slow := []*backend.Backend{{ID: "slow0", Addr: hang[0].addr()}, {ID: "slow1", Addr: hang[1].addr()}}
	for _, b := range append(slow, bs...) {
		c.Added(b)
	}
	start := clock.Now()
	run(t, c)
	eventually(t, "both slow checks in flight", func() bool {
		return hang[0].inflight.Load() == 1 && hang[1].inflight.Load() == 1
	})
	for range 3 {
		c.kick(slow[0])
		c.kick(slow[1])
	}
	eventually(t, "every fast backend checked once", func() bool { return log.fewest(bs) >= 1 })
	for round := 2; round <= rounds; round++ {
		clock.Advance(step)
		eventually(t, fmt.Sprint("round ", round), func() bool { return log.fewest(bs) >= round })
	}

	if got := peak(c); got > workers {
		t.Errorf("%d checks ran at once, want at most %d", got, workers)
	}
	for i, h := range hang {
		if total, worst := h.total.Load(), h.worst.Load(); total != 1 || worst != 1 {
			t.Errorf("slow%d: %d checks, %d at once; want one", i, total, worst)
		}
	}
	for _, b := range bs {
		at := log.times(b)
		if len(at) != rounds {
			t.Errorf("%s: %d checks in %d rounds, want one a round", b.ID, len(at), rounds)
			break
		}
		for i, got := range at {
			if want := start.Add(time.Duration(i) * step); !got.Equal(want) {
				t.Errorf("%s: check %d at +%v, want +%v (when it fell due)", b.ID, i+1, got.Sub(start), want.Sub(start))
				break
			}
		}
	}
}

// When the regular workers are busy with checks waiting for their timeout,
// due checks wait for them only until they are late by a tenth of the
// interval; then more start at once, up to the late bound, so every
// backend stays close to its interval. The scheduler's clock is fake: it
// stands still until the test makes the waiting checks late.
func TestScheduleGrowsWhenLate(t *testing.T) {
	t.Parallel()
	const (
		n        = 40
		interval = 300 * time.Millisecond
		timeout  = 200 * time.Millisecond
		late     = 16 // ceil(40 × 200ms / 500ms)
	)
	// Every check takes its 200ms (real) timeout.
	clock := newFakeClock()
	c, _, _ := newChecker(t, Options{Interval: interval, Timeout: timeout})
	c.clock = clock
	c.sched.minWorkers = 2
	log := watchChecks(c)
	bs := backends("b", n, blackHole(t))
	for _, b := range bs {
		c.Added(b)
	}
	start := clock.Now()
	run(t, c)

	// Not late yet: the two regular workers take the due checks one
	// after another, however long that takes.
	recorded := func() int {
		total := 0
		for _, b := range bs {
			total += log.count(b)
		}
		return total
	}
	eventually(t, "four checks timed out", func() bool { return recorded() >= 4 })
	if got := peak(c); got != 2 {
		t.Fatalf("%d checks ran at once before any was late, want the 2 regular workers", got)
	}

	// Late: more start at once, up to the late bound.
	clock.Advance(interval / 10)
	eventually(t, "the late bound reached", func() bool { return peak(c) >= late })
	eventually(t, "every backend checked", func() bool { return log.fewest(bs) >= 1 })
	if got := peak(c); got != late {
		t.Errorf("%d checks ran at once, want the late bound %d", got, late)
	}
	for _, b := range bs {
		if at := log.times(b)[0]; at.After(start.Add(interval / 10)) {
			t.Errorf("%s: first check at +%v, want by +%v", b.ID, at.Sub(start), interval/10)
			break
		}
	}
	if got := bs[0].Status().LastError; got != "timeout after 200ms" {
		t.Errorf("LastError = %q, want a timeout", got)
	}
}

// Backends added before Run (a configuration loaded at start) are not late
// while the regular workers get through their first checks: no burst of
// goroutines at start-up, even when they were added long before Run. The
// clock is fake and stands still from Run on, so only the rule (late only
// from Run's start) can keep the workers at their number.
func TestScheduleNoBurstAtStart(t *testing.T) {
	t.Parallel()
	const n, workers = 200, 4
	ts := newTestServer(t, http.StatusOK, "")
	clock := newFakeClock()
	c, _, _ := newChecker(t, Options{Interval: 10 * time.Second})
	c.clock = clock
	c.sched.minWorkers = workers // the late bound stays ceil(200 × 5s / 15s) = 67
	log := watchChecks(c)
	bs := backends("b", n, ts.addr())
	for _, b := range bs {
		c.Added(b)
	}
	clock.Advance(time.Hour) // every first check is an hour overdue
	run(t, c)
	eventually(t, "every backend checked", func() bool { return log.fewest(bs) >= 1 })
	if got := peak(c); got > workers {
		t.Errorf("%d checks ran at once at start-up, want at most %d", got, workers)
	}
}

// A backend removed while its check is in flight: the check is abandoned
// (the connection closed, nothing recorded), and the backend is never
// checked again, kicked or not.
func TestScheduleRemovedMidFlight(t *testing.T) {
	t.Parallel()
	hang := newHangServer(t)
	fast := newTestServer(t, http.StatusOK, "")
	c, _, _ := newChecker(t, Options{Interval: 20 * time.Millisecond, Timeout: time.Minute, PassiveFailures: 1})
	log := watchChecks(c)
	gone := &backend.Backend{ID: "gone", Addr: hang.addr()}
	clock := &backend.Backend{ID: "clock", Addr: fast.addr()}
	c.Added(gone)
	c.Added(clock)
	p := c.probeOf(gone)
	run(t, c)
	eventually(t, "check in flight", func() bool { return hang.inflight.Load() == 1 })

	c.Removed(gone)
	eventually(t, "the check abandoned", func() bool { return hang.inflight.Load() == 0 })
	eventually(t, "its worker to return", func() bool {
		c.sched.mu.Lock()
		defer c.sched.mu.Unlock()
		return !p.slot.busy && p.slot.index < 0
	})
	c.kick(gone)
	c.Failure(gone, nil)
	n := log.count(clock)
	eventually(t, "five more checks of another backend", func() bool { return log.count(clock) >= n+5 })

	if got := hang.total.Load(); got != 1 {
		t.Errorf("removed backend checked %d times, want the one abandoned", got)
	}
	if got := log.count(gone); got != 0 {
		t.Errorf("%d checks of the removed backend recorded", got)
	}
	if gone.Health() != backend.Unknown || gone.Status() != (backend.Status{}) {
		t.Errorf("removed backend changed: %v %+v", gone.Health(), gone.Status())
	}
	if got := testutil.CollectAndCount(c.m.healthy); got != 1 {
		t.Errorf("backend_healthy has %d series, want only the other backend's", got)
	}
	if got := c.live.Load(); got != 1 {
		t.Errorf("%d backends checked, want 1", got)
	}
}

// SetOptions re-times a waiting backend with the new interval, and a new
// timeout applies from the next check.
func TestScheduleIntervalChange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, _ := newChecker(t, Options{Interval: slow})
	log := watchChecks(c)
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	p := c.probeOf(b)
	run(t, c)
	eventually(t, "first check", func() bool { return log.count(b) == 1 })

	c.SetOptions(Options{Interval: 20 * time.Millisecond})
	eventually(t, "checks every 20ms", func() bool { return log.count(b) >= 6 })

	// Back to an hour: once the check in flight (if any) is done, the next
	// one is an hour away, not 20ms.
	c.SetOptions(Options{Interval: slow})
	eventually(t, "next check an hour away", func() bool {
		c.sched.mu.Lock()
		defer c.sched.mu.Unlock()
		return p.slot.index >= 0 && time.Until(p.slot.due) > 50*time.Minute
	})

	ts.hang.Store(true)
	c.SetOptions(Options{Interval: 20 * time.Millisecond, Timeout: 30 * time.Millisecond})
	eventually(t, "the new timeout", func() bool { return b.Status().LastError == "timeout after 30ms" })
}

// With 1,000 backends whose checks all wait for their timeout, the process
// runs a bounded number of goroutines, and none are left after Run.
// Not parallel: it counts the test binary's goroutines.
func TestScheduleGoroutinesBounded(t *testing.T) {
	const n = 1000
	before := runtime.NumGoroutine()
	c, _, _ := newChecker(t, Options{Interval: time.Second, Timeout: 50 * time.Millisecond})
	log := watchChecks(c)
	bs := backends("b", n, blackHole(t))
	for _, b := range bs {
		c.Added(b)
	}
	c.sched.mu.Lock()
	_, late := c.sched.bounds(c.options())
	c.sched.mu.Unlock()
	// A check in flight is its goroutine plus http.Transport's dialer or
	// connection reader and writer; allow a margin for connections still
	// closing.
	limit := before + 2 + 4*late + 32
	if limit >= before+n {
		t.Fatalf("limit %d does not show a bound below one goroutine per backend", limit)
	}

	stop := run(t, c)
	most := 0
	deadline := time.Now().Add(4 * waitFor)
	for log.fewest(bs) < 1 {
		most = max(most, runtime.NumGoroutine())
		if time.Now().After(deadline) {
			t.Fatalf("not every backend checked in %v (fewest %d)", 4*waitFor, log.fewest(bs))
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
	if most > limit {
		t.Errorf("%d goroutines while checking %d backends (%d before), want at most %d", most, n, before, limit)
	}
	if got := peak(c); got > late {
		t.Errorf("%d checks ran at once, want at most %d", got, late)
	}

	stop()
	if got := c.workers.Load(); got != 0 {
		t.Errorf("%d check goroutines after Run returned", got)
	}
	eventually(t, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before+2 })
}
