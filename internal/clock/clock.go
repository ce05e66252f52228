// Package clock is the one source of time of a component that keeps a
// timetable (the health checker, the ACME manager): everything in it that
// reads the time reads one Clock, so its parts agree with each other. The
// component uses System; its tests set a fake Clock (package clocktest)
// and move it by hand, so that what depends on time can be proved without
// waiting for it.
//
// What measures the outside world (a network timeout, the duration of a
// request) stays on the system clock: it measures the network, not the
// timetable.
package clock

import "time"

// Clock tells the time and makes alarms. It is safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Alarm returns a new alarm, not set, for one goroutine.
	Alarm() Alarm
}

// Alarm wakes a goroutine at an instant. It is set to a point in time
// rather than after a duration, so that a clock that moves between reading
// it and setting the alarm cannot make the alarm miss. An alarm is used by
// one goroutine at a time.
type Alarm interface {
	// C receives when the alarm goes off; a value may be stale, so a
	// receiver treats it as a hint to look at the clock.
	C() <-chan time.Time
	// Set makes the alarm go off at t, at once if t has passed, replacing
	// any earlier setting.
	Set(t time.Time)
	// Stop unsets the alarm.
	Stop()
}

// System is the real clock; its zero value is ready to use.
type System struct{}

var _ Clock = System{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Alarm returns a new alarm on a time.Timer.
func (System) Alarm() Alarm {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemAlarm{t: t}
}

// systemAlarm is an alarm on a time.Timer. Since Go 1.23 Reset and Stop
// discard a value not yet received, so no stale wake-up is left behind.
type systemAlarm struct{ t *time.Timer }

func (a systemAlarm) C() <-chan time.Time { return a.t.C }
func (a systemAlarm) Set(t time.Time)     { a.t.Reset(time.Until(t)) }
func (a systemAlarm) Stop()               { a.t.Stop() }
