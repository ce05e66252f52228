package clocktest

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// rang reports whether a has gone off, and the time it carried.
func rang(a interface{ C() <-chan time.Time }) (time.Time, bool) {
	select {
	case at := <-a.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestMoving(t *testing.T) {
	t.Parallel()
	c := New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	c.Advance(time.Minute)
	if got, want := c.Now(), start.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("after Advance: Now() = %v, want %v", got, want)
	}
	c.Set(start) // backwards: stays
	if got, want := c.Now(), start.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("after Set backwards: Now() = %v, want %v", got, want)
	}
	c.Set(start.Add(time.Hour))
	if got, want := c.Now(), start.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("after Set: Now() = %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("Advance with a negative duration did not panic")
		}
	}()
	c.Advance(-time.Second)
}

func TestAlarm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		unset    bool          // never Set
		setAt    time.Duration // from start
		stop     bool          // Stop after Set
		move     func(c *Clock)
		wantRing bool
		wantAt   time.Duration // the time carried, from start
	}{
		{name: "not set", unset: true, move: func(c *Clock) { c.Advance(time.Hour) }},
		{name: "in the past rings at once", setAt: -time.Second, move: func(*Clock) {}, wantRing: true},
		{name: "now rings at once", setAt: 0, move: func(*Clock) {}, wantRing: true},
		{name: "not before its time", setAt: time.Minute, move: func(c *Clock) { c.Advance(time.Minute - time.Nanosecond) }},
		{name: "advanced to", setAt: time.Minute, move: func(c *Clock) { c.Advance(time.Minute) }, wantRing: true, wantAt: time.Minute},
		{name: "advanced past", setAt: time.Minute, move: func(c *Clock) { c.Advance(time.Hour) }, wantRing: true, wantAt: time.Hour},
		{name: "set past", setAt: time.Minute, move: func(c *Clock) { c.Set(start.Add(2 * time.Minute)) }, wantRing: true, wantAt: 2 * time.Minute},
		{name: "stopped", setAt: time.Minute, stop: true, move: func(c *Clock) { c.Advance(time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(start)
			a := c.Alarm()
			if !tt.unset {
				a.Set(start.Add(tt.setAt))
			}
			if tt.stop {
				a.Stop()
			}
			tt.move(c)
			at, ok := rang(a)
			if ok != tt.wantRing {
				t.Fatalf("rang = %v, want %v", ok, tt.wantRing)
			}
			if ok && !at.Equal(start.Add(tt.wantAt)) {
				t.Fatalf("rang with %v, want %v", at, start.Add(tt.wantAt))
			}
		})
	}
}

// TestAlarmOnce checks that an alarm goes off once per setting, that a
// wake-up not received never blocks the clock, and that Set replaces an
// earlier setting.
func TestAlarmOnce(t *testing.T) {
	t.Parallel()
	c := New(start)
	a := c.Alarm()
	a.Set(start.Add(time.Second))
	c.Advance(time.Second)
	c.Advance(time.Second)
	if _, ok := rang(a); !ok {
		t.Fatal("did not ring")
	}
	if _, ok := rang(a); ok {
		t.Fatal("rang twice for one setting")
	}

	a.Set(c.Now()) // rings; the wake-up stays pending
	a.Set(c.Now()) // rings again: must not block
	if _, ok := rang(a); !ok {
		t.Fatal("did not ring")
	}

	a.Set(c.Now().Add(time.Hour))
	a.Set(c.Now().Add(2 * time.Hour)) // replaces
	c.Advance(time.Hour)
	if _, ok := rang(a); ok {
		t.Fatal("rang at a replaced setting")
	}
	c.Advance(time.Hour)
	if _, ok := rang(a); !ok {
		t.Fatal("did not ring at the new setting")
	}
}

func TestWaitArmed(t *testing.T) {
	t.Parallel()
	c := New(start)
	later := func(at time.Time) bool { return at.After(c.Now()) }
	for _, d := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		go c.Alarm().Set(start.Add(d))
	}
	got := c.WaitArmedN(t, 5*time.Second, "in the future", 3, later)
	want := []time.Time{start.Add(time.Hour), start.Add(2 * time.Hour), start.Add(3 * time.Hour)}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("WaitArmedN = %v, want %v", got, want)
	}
	c.Advance(90 * time.Minute)
	if got, want := c.WaitArmed(t, 5*time.Second, "in the future", later), start.Add(2*time.Hour); !got.Equal(want) {
		t.Fatalf("WaitArmed = %v, want %v", got, want)
	}
}

// fatalTB records the failure of a WaitArmed that times out.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitArmedTimeout(t *testing.T) {
	t.Parallel()
	c := New(start)
	a := c.Alarm()
	a.Set(start.Add(time.Hour))
	a.Stop()
	c.Alarm().Set(start.Add(time.Minute))
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.WaitArmed(f, 20*time.Millisecond, "after an hour", func(at time.Time) bool { return !at.Before(start.Add(time.Hour)) })
		t.Error("WaitArmed returned without a matching alarm")
	}()
	<-done
	want := fmt.Sprintf("timed out waiting for 1 alarms after an hour; alarms set: %v", []time.Time{start.Add(time.Minute)})
	if f.msg != want {
		t.Fatalf("failure %q, want %q", f.msg, want)
	}
}

// TestConcurrent uses a clock from many goroutines at once, for the race
// detector: goroutines wait on their own alarms while the test moves the
// clock until every one has gone off.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	c := New(start)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := c.Alarm()
			defer a.Stop()
			at := c.Now().Add(time.Duration(i+1) * time.Minute)
			a.Set(at)
			for c.Now().Before(at) {
				<-a.C() // a stale value is a hint to look at the clock
				a.Set(at)
			}
		})
	}
	c.WaitArmedN(t, 5*time.Second, "of every goroutine", n, func(time.Time) bool { return true })
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for {
		select {
		case <-done:
			return
		default:
			c.Advance(time.Minute)
			runtime.Gosched()
		}
	}
}
