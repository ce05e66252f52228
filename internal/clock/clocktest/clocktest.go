// Package clocktest is a fake clock.Clock for tests: it moves only when
// the test says so, and its alarms go off when it reaches them, so a test
// can run a timetable through hours without waiting or depending on how
// fast the machine is. Work the code under test does between alarms (a
// check, an order) takes real time, during which the fake clock stands
// still.
package clocktest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"fronttier/internal/clock"
)

// Clock is a fake clock.Clock. It is safe for concurrent use; mu guards
// everything in it and in its alarms.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	alarms  []*alarm      // every alarm made, set or not
	changed chan struct{} // closed and replaced whenever an alarm is set or unset
}

var _ clock.Clock = (*Clock)(nil)

// New returns a fake clock showing start. A test whose code compares the
// clock with the outside world's (a CA stamps certificates with the real
// time) starts it at time.Now(); others at a fixed time.
func New(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, never backwards (an earlier t leaves it where
// it is), and sets off the alarms it reaches.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	c.ringLocked()
}

// Advance moves the clock on by d and sets off the alarms it reaches. It
// panics if d is negative: the clock does not go backwards.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("clocktest: Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.ringLocked()
}

// Alarm returns a new alarm, not set.
func (c *Clock) Alarm() clock.Alarm {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &alarm{c: c, ch: make(chan time.Time, 1)}
	c.alarms = append(c.alarms, a)
	return a
}

// WaitArmed waits until an alarm is set for a time for which ok holds and
// returns that time; what says which alarm, for the failure after timeout.
// It is called from the test's goroutine.
func (c *Clock) WaitArmed(t testing.TB, timeout time.Duration, what string, ok func(at time.Time) bool) time.Time {
	t.Helper()
	return c.WaitArmedN(t, timeout, what, 1, ok)[0]
}

// WaitArmedN waits until n alarms are set for times for which ok holds and
// returns all such times, earliest first; what says which alarms, for the
// failure after timeout. It is called from the test's goroutine.
func (c *Clock) WaitArmedN(t testing.TB, timeout time.Duration, what string, n int, ok func(at time.Time) bool) []time.Time {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		armed, changed := c.armedLocked(), c.changed
		c.mu.Unlock()
		var match []time.Time
		for _, at := range armed {
			if ok(at) {
				match = append(match, at)
			}
		}
		if len(match) >= n {
			return match
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %d alarms %s; alarms set: %v", n, what, armed)
		}
	}
}

// armedLocked returns the times of the alarms that are set and not yet
// due, earliest first.
func (c *Clock) armedLocked() []time.Time {
	var at []time.Time
	for _, a := range c.alarms {
		if a.armed {
			at = append(at, a.at)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	return at
}

// ringLocked sets off the alarms that are due.
func (c *Clock) ringLocked() {
	for _, a := range c.alarms {
		a.ringLocked()
	}
}

// changedLocked wakes the waiters of WaitArmedN.
func (c *Clock) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// alarm is a Clock's alarm; c.mu guards at and armed.
type alarm struct {
	c     *Clock
	ch    chan time.Time // holds one pending wake-up
	at    time.Time
	armed bool
}

func (a *alarm) C() <-chan time.Time { return a.ch }

func (a *alarm) Set(t time.Time) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.at, a.armed = t, true
	a.ringLocked()
	a.c.changedLocked()
}

func (a *alarm) Stop() {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.armed = false
	a.c.changedLocked()
}

// ringLocked sends the clock's time on the channel if the alarm is set and
// due, and unsets it.
func (a *alarm) ringLocked() {
	if !a.armed || a.at.After(a.c.now) {
		return
	}
	a.armed = false
	select {
	case a.ch <- a.c.now:
	default: // a wake-up is pending already
	}
}
