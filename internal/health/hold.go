package health

import (
	"time"

	"fronttier/internal/backend"
)

// Ejection back-off, after Envoy's outlier detection.
//
// Without it a flapping backend (one that fails real traffic, is ejected,
// then passes HealthyThreshold checks) is back in rotation after every few
// seconds of passing checks, and fails requests again each time. So every
// ejection, a transition to Unhealthy whether by active checks or passive
// failures, holds the backend out of rotation for at least
//
//	hold = EjectionBase × 2^(n-1), at most EjectionMax,
//
// where n counts the backend's ejections since it last stayed routable for
// EjectionMax in a row (after such a period n starts again at 1). During
// the hold checks go on and are counted as usual, but a backend that
// reaches HealthyThreshold passes is re-admitted only when the hold ends,
// and only if the check made then passes too: the schedule makes a check
// due when the hold ends (see schedule.done), and that check's record
// applies the transition. No timer or goroutine is kept per backend.
//
// The state lives in the probe under probe.mu, so one backend's hold never
// waits for another's. EjectionBase zero turns it all off: n is not
// counted and nothing is held.

// holdFor returns the hold of the n-th ejection in a row (n >= 1): base
// doubled n-1 times, at most limit. It does not overflow however large n
// is.
func holdFor(n int, base, limit time.Duration) time.Duration {
	hold := base
	for i := 1; i < n && hold < limit; i++ {
		if hold > limit/2 {
			return limit
		}
		hold *= 2
	}
	return min(hold, limit)
}

// eject starts the hold of an ejection at now of a backend that was from
// (Healthy or Unknown) until then, and returns its length; zero when holds
// are off. The caller holds p.mu.
func (p *probe) eject(now time.Time, from backend.Health, o *Options) time.Duration {
	if o.EjectionBase <= 0 {
		p.ejections, p.hold, p.holdEnd, p.upSince = 0, 0, time.Time{}, time.Time{}
		p.s.setHold(0)
		return 0
	}
	if from != backend.Unhealthy && !p.upSince.IsZero() && now.Sub(p.upSince) >= o.EjectionMax {
		p.ejections = 0 // it stayed routable long enough: forgiven
	}
	p.ejections++
	p.hold = holdFor(p.ejections, o.EjectionBase, o.EjectionMax)
	p.holdEnd = now.Add(p.hold)
	p.upSince = time.Time{}
	p.s.setHold(p.hold)
	return p.hold
}

// endHold ends the current hold if it is over at now, or released because
// holds were turned off, and returns the length of the hold it ended; zero
// when there was none or it goes on. The caller holds p.mu.
func (p *probe) endHold(now time.Time, o *Options) time.Duration {
	if p.holdEnd.IsZero() || (o.EjectionBase > 0 && now.Before(p.holdEnd)) {
		return 0
	}
	ended := p.hold
	p.hold, p.holdEnd = 0, time.Time{}
	p.s.setHold(0)
	return ended
}

// held reports whether the backend is in an ejection hold; endHold must
// have been called with the current time first. The caller holds p.mu.
func (p *probe) held() bool { return !p.holdEnd.IsZero() }

// readmit records that the backend became routable at now (it was
// re-admitted, or its first check passed). The caller holds p.mu.
func (p *probe) readmit(now time.Time) {
	p.upSince = now
	p.hold, p.holdEnd = 0, time.Time{}
	p.s.setHold(0)
}
