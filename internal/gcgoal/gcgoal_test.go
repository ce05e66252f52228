package gcgoal

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{1 * mib, 400},
		{8 * mib, 400},
		{10 * mib, 320}, // 32 MiB of garbage
		{16 * mib, 200},
		{32 * mib, 100},
		{500 * mib, 100},
	} {
		if got := Percent(tt.live, Options{}); got != tt.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
		}
	}
	if got := Percent(10*mib, Options{Headroom: 20 * mib, MinPercent: 50, MaxPercent: 300}); got != 200 {
		t.Errorf("Percent with options = %d, want 200", got)
	}
}

// TestRun drives Run with a fake clock and live heap: it sets the
// percentage at once, follows the live heap at each look (changes under a
// tenth skipped, the bounds always reached), and stops with its context.
func TestRun(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	var live atomic.Uint64
	live.Store(4 * mib)
	var mu sync.Mutex
	var set []int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Clock: clk, Every: time.Second, Live: live.Load, Set: func(p int) int {
			mu.Lock()
			defer mu.Unlock()
			set = append(set, p)
			return 0
		}})
	}()
	step := func(l uint64) {
		t.Helper()
		at := clk.WaitArmed(t, 10*time.Second, "the next look", func(time.Time) bool { return true })
		live.Store(l)
		clk.Set(at)
	}
	step(16 * mib) // 400 -> 200
	step(17 * mib) // 188: within a tenth of 200, kept
	step(20 * mib) // 160
	step(40 * mib) // 100, the bound
	step(1 * mib)  // 400
	clk.WaitArmed(t, 10*time.Second, "the look after the last change", func(time.Time) bool { return true })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []int{400, 200, 160, 100, 400}
	if len(set) != len(want) {
		t.Fatalf("percentages set %v, want %v", set, want)
	}
	for i := range want {
		if set[i] != want[i] {
			t.Fatalf("percentages set %v, want %v", set, want)
		}
	}
}
