package acme

import "time"

// clock is the Manager's one source of time: the schedule of every domain
// (when a certificate is due, when to retry, when to look at the CA's
// renewal information again), the order rate limit, and the checks that a
// certificate has not expired all read it, so they agree with each other.
// New uses the system clock; tests set a fake one (before Sync and Run) and
// move it by hand, so that a schedule of hours can be proved in a second
// against a real CA.
//
// What the CA and acmez do stays on their own (system) clocks: the
// validity of issued certificates, HTTP timeouts, acmez's polling.
type clock interface {
	// now returns the current time.
	now() time.Time
	// alarm returns a new alarm, not set, for one goroutine.
	alarm() alarm
}

// alarm wakes a goroutine at an instant. It is set to a point in time
// rather than after a duration, so that a clock that moves between reading
// it and setting the alarm cannot make the alarm miss.
type alarm interface {
	// C receives when the alarm goes off; a value may be stale, so a
	// receiver treats it as a hint to look at the clock.
	C() <-chan time.Time
	// set makes the alarm go off at t, at once if t has passed, replacing
	// any earlier setting.
	set(t time.Time)
	// stop unsets the alarm.
	stop()
}

// systemClock is the real clock.
type systemClock struct{}

var _ clock = systemClock{}

func (systemClock) now() time.Time { return time.Now() }

func (systemClock) alarm() alarm {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemAlarm{t: t}
}

// systemAlarm is an alarm on a time.Timer. Since Go 1.23 Reset and Stop
// discard a value not yet received, so no stale wake-up is left behind.
type systemAlarm struct{ t *time.Timer }

func (a systemAlarm) C() <-chan time.Time { return a.t.C }
func (a systemAlarm) set(t time.Time)     { a.t.Reset(time.Until(t)) }
func (a systemAlarm) stop()               { a.t.Stop() }
