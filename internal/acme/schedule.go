package acme

import "time"

// Limits of the schedule.
const (
	// lifetimeShare: a certificate is due when a third of its lifetime
	// remains, if that is less than RenewBefore (a 90-day certificate
	// renews 30 days before expiry, a 24-hour one 8 hours before).
	lifetimeShare = 3
	// retryShare: after a failed renewal, the next attempt never waits
	// longer than a quarter of the time the served certificate has left,
	// so that several attempts fit before it expires.
	retryShare = 4
	// minARIPoll bounds how often the CA's renewal information is fetched
	// again, whatever its Retry-After says.
	minARIPoll = time.Minute
)

// renewAt is when c is due for renewal: when the smaller of before and a
// third of its lifetime remains, or earlier at the time selected inside
// the CA's suggested renewal window (ARI).
func (c *certificate) renewAt(before time.Duration) time.Time {
	if lifetime := c.leaf.NotAfter.Sub(c.leaf.NotBefore); lifetime > 0 {
		before = min(before, lifetime/lifetimeShare)
	}
	at := c.leaf.NotAfter.Add(-before)
	if ri := c.meta.RenewalInfo; ri != nil && ri.HasWindow() && !ri.SelectedTime.IsZero() && ri.SelectedTime.Before(at) {
		at = ri.SelectedTime
	}
	return at
}

// nextCheck is when to look at d's certificate cur again, at now, when it
// is not due: the earliest of when it becomes due, when the CA's renewal
// information may have changed (its Retry-After, at least minARIPoll away)
// and RenewalCheck from now, which is only a backstop.
func (m *Manager) nextCheck(d *domain, cur *certificate, now time.Time) time.Time {
	next := earliest(cur.renewAt(m.renewBefore), now.Add(m.renewalCheck))
	if ri := cur.meta.RenewalInfo; m.ari && !d.ariUnsupported && ri != nil && ri.RetryAfter != nil {
		poll := *ri.RetryAfter
		if poll.Before(now.Add(minARIPoll)) {
			poll = now.Add(minARIPoll)
		}
		next = earliest(next, poll)
	}
	return next
}

// ariStale reports whether the renewal information of c should be fetched
// again at now.
func ariStale(c *certificate, now time.Time) bool {
	ri := c.meta.RenewalInfo
	return ri == nil || !ri.HasWindow() || ri.RetryAfter == nil || !now.Before(*ri.RetryAfter)
}

// retryWait is the wait after the failures-th consecutive failure: base
// doubled for each failure after the first, capped at limit and, while the
// served certificate has remaining > 0 left, at a quarter of that (but
// never below base).
func retryWait(base, limit time.Duration, failures int, remaining time.Duration) time.Duration {
	wait := backoff(base, limit, failures)
	if remaining > 0 {
		wait = min(wait, max(remaining/retryShare, base))
	}
	return wait
}

// backoff returns base doubled for each failure after the first, capped at
// limit.
func backoff(base, limit time.Duration, failures int) time.Duration {
	wait := base
	for i := 1; i < failures && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}

// earliest returns the earliest of ts.
func earliest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.Before(t) {
			t = u
		}
	}
	return t
}
