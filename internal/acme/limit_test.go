package acme

import (
	"context"
	"errors"
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"
)

func TestOrderLimiter(t *testing.T) {
	t.Parallel()
	fc := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	t0 := fc.Now()
	l := newOrderLimiter(fc, time.Minute, 2)
	for i, want := range []time.Time{t0, t0, t0.Add(time.Minute)} {
		if got := l.reserve(); !got.Equal(want) {
			t.Errorf("reserve %d at t0 = %v, want %v", i, got, want)
		}
	}
	fc.Set(t0.Add(30 * time.Second)) // half a token back: 1.5 owed
	if got, want := l.reserve(), t0.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("reserve at t0+30s = %v, want %v", got, want)
	}

	// A wait given up returns its token.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.wait(ctx) }()
	fc.WaitArmed(t, waitTimeout, "for the token", func(at time.Time) bool { return at.Equal(t0.Add(3 * time.Minute)) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("wait = %v, want context.Canceled", err)
	}
	if got, want := l.reserve(), t0.Add(3*time.Minute); !got.Equal(want) {
		t.Errorf("reserve after a cancelled wait = %v, want %v (the token given back)", got, want)
	}

	// Refill stops at burst.
	fc.Set(t0.Add(24 * time.Hour))
	for i := range 3 {
		want := fc.Now()
		if i == 2 {
			want = want.Add(time.Minute)
		}
		if got := l.reserve(); !got.Equal(want) {
			t.Errorf("reserve %d after a day = %v, want %v", i, got, want)
		}
	}
}

// TestOrderRateLimitCountsOrders: against Pebble, one issuance takes one
// token (the one its attempt took before the order timeout, not a second
// one at the transport), and an order over the limit waits for the refill.
func TestOrderRateLimitCountsOrders(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	tm.limit.every, tm.limit.burst, tm.limit.tokens = time.Hour, 1, 1
	const a, b = "first.example.test", "second.example.test"
	tm.Sync([]string{a})
	tm.run(t)
	tm.inst.waitFor(t, "the first certificate", func(ev []event) bool { return lastStatus(ev, a).status == StatusValid })

	tm.Sync([]string{a, b})
	refill := fc.Now().Add(time.Hour)
	fc.WaitArmed(t, waitTimeout, "for the refill", func(at time.Time) bool { return at.Equal(refill) })
	if e := lastStatus(tm.inst.snapshot(), b); e.status != StatusPending {
		t.Fatalf("%s: status %q before the refill, want pending", b, e.status)
	}
	fc.Set(refill)
	tm.inst.waitFor(t, "the second certificate", func(ev []event) bool { return lastStatus(ev, b).status == StatusValid })
}
