package health

import (
	"strconv"
	"time"

	"fronttier/internal/backend"
)

// Failure records a forwarding failure of real traffic to b (passive health;
// it satisfies proxy.FailureReporter). When Options.PassiveFailures failures
// fall within Options.PassiveWindow, b is ejected at once:
//
//   - its health becomes Unhealthy (counted and logged as a passive ejection
//     if it was routable);
//   - its status gets LastCheck = now, LastError "passive: <err>",
//     ConsecutivePasses 0 and ConsecutiveFailures one more, so the active
//     checker needs HealthyThreshold consecutive passes to bring it back;
//     an active check already in flight is not counted;
//   - the window starts empty again; if the backend was routable, an active
//     check follows at once rather than when it falls due;
//   - if it was routable and Options.EjectionBase is set, the ejection
//     holds it out of rotation (see hold.go) from now.
//
// Failures reported while the backend is already Unhealthy still count: a
// full window resets its pass counter again (real traffic still fails), but
// is no new ejection and does not lengthen a hold.
//
// Failure on a backend that is not checked (unknown or removed), or with
// passive checking disabled, does nothing. It takes only b's own small
// mutex, never a lock shared between backends.
func (c *Checker) Failure(b *backend.Backend, err error) {
	o := c.options()
	if o.PassiveFailures <= 0 || b == nil {
		return
	}
	p := c.probeOf(b)
	if p == nil {
		return
	}
	now := c.clock.Now()
	if c.failure(p, now, o, err) {
		c.sched.kick(p, now)
	}
}

// failure counts one passive failure at now and ejects the backend when the
// window holds o.PassiveFailures of them. It reports whether the backend
// changed to Unhealthy.
func (c *Checker) failure(p *probe, now time.Time, o *Options, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return false
	}
	p.s.passive.Inc()

	// Keep only failures at most PassiveWindow old, then add this one.
	cutoff := now.Add(-o.PassiveWindow)
	i := 0
	for i < len(p.fails) && p.fails[i].Before(cutoff) {
		i++
	}
	p.fails = append(p.fails[:0], p.fails[i:]...)
	p.fails = append(p.fails, now)
	if len(p.fails) < o.PassiveFailures {
		return false
	}
	p.fails = p.fails[:0]

	text := "failure"
	if err != nil {
		text = err.Error()
	}
	b := p.b
	p.epoch.Add(1)
	st := b.Status()
	st.LastCheck = now
	st.LastError = "passive: " + text
	st.ConsecutivePasses = 0
	st.ConsecutiveFailures++
	b.SetStatus(st)
	from := b.Health()
	changed := b.SetHealth(backend.Unhealthy)
	if changed {
		c.transition(p, now, o, from, backend.Unhealthy, reasonPassive,
			"passive: "+strconv.Itoa(o.PassiveFailures)+" failures within "+o.PassiveWindow.String()+", last: "+text)
	}
	p.s.setHealthy(b.Health())
	return changed
}
