package acme

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock (see clock) that moves only when the test says so.
// Its alarms go off when advance reaches them, so a test can run a domain
// through hours of schedule against a real Pebble without waiting. Orders
// themselves take real time, during which the fake clock stands still.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	alarms  []*fakeAlarm
	changed chan struct{} // closed and replaced whenever an alarm is set
}

var _ clock = (*fakeClock)(nil)

// newFakeClock returns a fake clock showing start. Tests against Pebble
// start it at the real time, since Pebble stamps certificates with it.
func newFakeClock(start time.Time) *fakeClock {
	return &fakeClock{t: start, changed: make(chan struct{})}
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// set moves the clock to t (never backwards) and sets off the alarms it
// reaches.
func (f *fakeClock) set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.t) {
		f.t = t
	}
	for _, a := range f.alarms {
		a.ring()
	}
}

func (f *fakeClock) alarm() alarm {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := &fakeAlarm{f: f, c: make(chan time.Time, 1)}
	f.alarms = append(f.alarms, a)
	return a
}

// armed returns the times of the alarms that are set and not yet due.
func (f *fakeClock) armedLocked() []time.Time {
	var at []time.Time
	for _, a := range f.alarms {
		if a.armed {
			at = append(at, a.at)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	return at
}

// waitArmed waits until an alarm is set for a time for which ok holds and
// returns that time, failing after waitTimeout.
func (f *fakeClock) waitArmed(t *testing.T, what string, ok func(at time.Time) bool) time.Time {
	t.Helper()
	return f.waitArmedN(t, what, 1, ok)[0]
}

// waitArmedN waits until n alarms are set for times for which ok holds and
// returns those times, earliest first, failing after waitTimeout.
func (f *fakeClock) waitArmedN(t *testing.T, what string, n int, ok func(at time.Time) bool) []time.Time {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		armed, changed := f.armedLocked(), f.changed
		f.mu.Unlock()
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

// fakeAlarm is a fakeClock's alarm; f.mu guards at and armed.
type fakeAlarm struct {
	f     *fakeClock
	c     chan time.Time
	at    time.Time
	armed bool
}

func (a *fakeAlarm) C() <-chan time.Time { return a.c }

func (a *fakeAlarm) set(t time.Time) {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.at, a.armed = t, true
	a.ring()
	close(a.f.changed)
	a.f.changed = make(chan struct{})
}

func (a *fakeAlarm) stop() {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.armed = false
}

// ring sends on the channel if the alarm is set and due; f.mu is held.
func (a *fakeAlarm) ring() {
	if !a.armed || a.at.After(a.f.t) {
		return
	}
	a.armed = false
	select {
	case a.c <- a.f.t:
	default:
	}
}
