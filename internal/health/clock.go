package health

import "time"

// clock is the checker's one source of time: status times, the passive
// window, the timetable of checks and ejection holds all read it, so they
// agree with each other. New uses the system clock; tests set a fake one
// (before the checker is used) and move it by hand, so that what depends
// on time can be proved without waiting for it.
//
// Only the duration of a check (its histogram) and its timeout stay on the
// system clock: they measure the network, not the timetable.
type clock interface {
	// now returns the current time.
	now() time.Time
	// alarm returns a new alarm, not set, for the scheduler's goroutine.
	alarm() alarm
}

// alarm wakes the scheduler at an instant. It is set to a point in time
// rather than after a duration, so that a clock that moves between the
// scheduler reading it and setting the alarm cannot make the alarm miss.
// An alarm is used by one goroutine at a time.
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
