package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
)

func TestAddedBeforeRunIsQueued(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, rec := newChecker(t, Options{Interval: slow})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)
	c.Added(b) // a second Added of the same backend is ignored
	if n := c.live.Load(); n != 0 {
		t.Fatalf("%d goroutines before Run, want 0", n)
	}
	run(t, c)
	if e := rec.next(t, b); e.health != backend.Healthy {
		t.Fatalf("queued backend: %v", e.health)
	}
	eventually(t, "one goroutine", func() bool { return c.live.Load() == 1 })
}

func TestRemovedStopsGoroutine(t *testing.T) {
	t.Parallel()
	ts1 := newTestServer(t, http.StatusOK, "")
	ts2 := newTestServer(t, http.StatusOK, "")
	c, reg, _ := newChecker(t, Options{Interval: 20 * time.Millisecond})
	b1 := &backend.Backend{ID: "b1", Addr: ts1.addr()}
	b2 := &backend.Backend{ID: "b2", Addr: ts2.addr()}
	c.Added(b1)
	run(t, c)
	c.Added(b2)
	eventually(t, "two goroutines", func() bool { return c.live.Load() == 2 })
	eventually(t, "both checked", func() bool { return ts1.passes.Load() > 0 && ts2.passes.Load() > 0 })

	c.Removed(b1)
	c.Removed(b1) // removing twice is harmless
	eventually(t, "b1's goroutine to exit", func() bool { return c.live.Load() == 1 })
	n := ts1.passes.Load()
	m := ts2.passes.Load()
	eventually(t, "b2 still checked", func() bool { return ts2.passes.Load() >= m+3 })
	if got := ts1.passes.Load(); got > n+1 { // at most one check was in flight
		t.Errorf("b1 checked %d more times after Removed", got-n)
	}
	if got := testutil.CollectAndCount(c.m.healthy); got != 1 {
		t.Errorf("backend_healthy has %d series, want 1 (b2)", got)
	}
	if got := testutil.CollectAndCount(c.m.hold); got != 1 {
		t.Errorf("backend_ejection_hold_seconds has %d series, want 1 (b2)", got)
	}
	if got := testutil.CollectAndCount(c.m.checks, "health_check_total"); got != 2 {
		t.Errorf("health_check_total has %d series, want 2 (b2 pass/fail)", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// Removed before Run started anything.
	c2, _, _ := newChecker(t, Options{Interval: slow})
	c2.Added(b1)
	c2.Removed(b1)
	run(t, c2)
	if got := testutil.CollectAndCount(c2.m.healthy); got != 0 {
		t.Errorf("removed-before-run backend has %d series", got)
	}
}

func TestRunWaitsForGoroutines(t *testing.T) {
	t.Parallel()
	hanging := newTestServer(t, http.StatusOK, "")
	hanging.hang.Store(true)
	ok := newTestServer(t, http.StatusOK, "")
	c, _, _ := newChecker(t, Options{Interval: 20 * time.Millisecond, Timeout: time.Minute})
	for i, ts := range []*testServer{hanging, ok, ok} {
		c.Added(&backend.Backend{ID: string(rune('a' + i)), Addr: ts.addr()})
	}
	stop := run(t, c)
	eventually(t, "three goroutines", func() bool { return c.live.Load() == 3 })
	eventually(t, "a hanging check in flight", func() bool { return hanging.agent.Load() != nil })
	stop() // fails the test if Run does not return
	if n := c.live.Load(); n != 0 {
		t.Fatalf("Run returned with %d goroutines still running", n)
	}
	// After Run, Added starts nothing.
	c.Added(&backend.Backend{ID: "late", Addr: ok.addr()})
	if n := c.live.Load(); n != 0 {
		t.Fatalf("Added after Run started %d goroutines", n)
	}
	// A second Run returns at once.
	done := make(chan struct{})
	go func() { c.Run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("second Run did not return")
	}
}

// An address change arrives as Removed(old) + Added(new) with the same id:
// the old goroutine stops, the new one checks the new address, and the id's
// series belong to the new backend.
func TestAddressChange(t *testing.T) {
	t.Parallel()
	oldSrv := newTestServer(t, http.StatusOK, "")
	newSrv := newTestServer(t, http.StatusServiceUnavailable, "")
	c, _, rec := newChecker(t, Options{Interval: 20 * time.Millisecond})
	reg := backend.NewRegistry(nil, nil)
	reg.Sync([]backend.Spec{{ID: "b1", Addr: oldSrv.addr()}})
	reg.Watch(c)
	run(t, c)
	old := reg.Get("b1")
	rec.next(t, old)

	reg.Sync([]backend.Spec{{ID: "b1", Addr: newSrv.addr()}})
	nb := reg.Get("b1")
	if nb == old {
		t.Fatal("registry kept the backend across an address change")
	}
	if e := rec.next(t, nb); e.health != backend.Unhealthy {
		t.Fatalf("new address: %v", e.health)
	}
	eventually(t, "one goroutine", func() bool { return c.live.Load() == 1 })
	if got := testutil.ToFloat64(c.m.healthy.WithLabelValues("b1", newSrv.addr())); got != 0 {
		t.Errorf("backend_healthy{new} = %v, want 0", got)
	}
	eventually(t, "fail checks counted for the new backend", func() bool {
		return testutil.ToFloat64(c.m.checks.WithLabelValues("b1", "fail")) >= 1
	})
	if got := testutil.CollectAndCount(c.m.healthy); got != 1 {
		t.Errorf("backend_healthy has %d series, want only the new address's", got)
	}
	reg.Sync(nil)
	eventually(t, "no goroutine", func() bool { return c.live.Load() == 0 })
	if got := testutil.CollectAndCount(c.m.healthy); got != 0 {
		t.Errorf("backend_healthy has %d series after removal", got)
	}
}

// Added, Removed, Failure and SetOptions from many goroutines at once; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, _, _ := newChecker(t, Options{Interval: 5 * time.Millisecond, PassiveFailures: 3, PassiveWindow: time.Second,
		EjectionBase: time.Millisecond, EjectionMax: 8 * time.Millisecond})
	run(t, c)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				b := &backend.Backend{ID: fmt.Sprint("b", g), Addr: ts.addr()}
				c.Added(b)
				c.Failure(b, errors.New("boom"))
				if i%10 == g {
					c.SetOptions(Options{Interval: 5 * time.Millisecond, PassiveFailures: 3, EjectionBase: time.Duration(i%2) * time.Millisecond})
				}
				c.Failure(b, errors.New("boom"))
				c.Removed(b)
				c.Failure(b, errors.New("after removal"))
			}
		})
	}
	wg.Wait()
	eventually(t, "every goroutine to exit", func() bool { return c.live.Load() == 0 })
}
