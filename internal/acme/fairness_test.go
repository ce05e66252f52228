package acme

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestHangingValidationsDoNotDelayOthers: domains whose validation hangs
// (the CA's requests get no answer until it gives up, 15 s per challenge
// in Pebble) do not hold up a good domain added after them: it is issued
// while they are all still pending.
func TestHangingValidationsDoNotDelayOthers(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	bad := make([]string, 6)
	for i := range bad {
		bad[i] = fmt.Sprintf("hang%d.example.test", i)
		env.front.hang.Store(bad[i], true)
	}
	tm := newTestManager(t, env, nil)
	tm.Sync(bad)
	tm.run(t)
	// At least as many as there used to be order slots for all domains.
	env.front.waitHung(t, 4, bad...)

	const good = "good.example.test"
	tm.Sync(append(slices.Clone(bad), good))
	events := tm.inst.waitFor(t, "the good certificate or a bad failure", func(ev []event) bool {
		if lastStatus(ev, good).status == StatusValid {
			return true
		}
		for _, name := range bad {
			if lastStatus(ev, name).status == StatusFailed {
				return true
			}
		}
		return false
	})
	for _, name := range bad {
		if e := lastStatus(events, name); e.status != StatusPending {
			t.Errorf("%s: status %q (%v) before the good domain's certificate; want pending", name, e.status, e.err)
		}
	}
	if e := lastStatus(events, good); e.status != StatusValid {
		t.Errorf("%s: status %q (%v), want valid", good, e.status, e.err)
	}
}

// waitHung waits until validations of at least n of hosts hang, failing
// after waitTimeout.
func (f *challengeFront) waitHung(t *testing.T, n int, hosts ...string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case h := <-f.hung:
			if slices.Contains(hosts, h) {
				seen[h] = true
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for %d hanging validations among %v; seen %v", n, hosts, seen)
		}
	}
}
