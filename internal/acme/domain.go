package acme

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"
)

// Operation label values of acme_certificate_operations_total.
const (
	opIssue = "issue"
	opRenew = "renew"
)

// domain is the state of the certificate of one key type of one managed
// domain (a unit: a domain with Options.KeyTypes ["ecdsa", "rsa"] has two,
// ordered, cached and renewed independently).
type domain struct {
	name    string // the domain name
	keyType string // KeyECDSA or KeyRSA
	// key names the unit in Manager.domains, the store, and the fleet's
	// failed attempts (see unitKey).
	key string
	// slot is shared by the units of name: one order at a time.
	slot nameSlot

	// wake asks the domain goroutine for a check now (capacity 1); forced
	// tells it that the check must ignore backoff and refresh ARI.
	wake   chan struct{}
	forced atomic.Bool
	// renew is set by Renew: order a new certificate whether or not the
	// served one is due, retrying after failures like a due renewal; it is
	// cleared when a certificate is obtained. ordering is true while an
	// order is in flight.
	renew    atomic.Bool
	ordering atomic.Bool

	// cert is the certificate being served, nil if none.
	cert atomic.Pointer[certificate]
	// adopted is set when a certificate another node of the fleet
	// obtained was installed, so that the goroutine starts its schedule
	// afresh.
	adopted atomic.Bool

	// installMu serialises writing the cache, Put and SetStatus for this
	// domain, and guards the transition of removed to true, after which
	// nothing is installed for the domain any more.
	installMu sync.Mutex
	removed   atomic.Bool

	// cancel stops the goroutine and done is closed when it has exited;
	// both are guarded by Manager.mu and nil when no goroutine was started.
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the domain goroutine.
	failures       int       // consecutive failed attempts (the fleet's, in a fleet)
	retryAt        time.Time // no attempt before this unless forced
	ariUnsupported bool      // the CA has no renewalInfo endpoint
	waits          int       // consecutive checks that found another node ordering
}

func newDomain(name, keyType string, slot nameSlot) *domain {
	return &domain{name: name, keyType: keyType, key: unitKey(name, keyType), slot: slot, wake: make(chan struct{}, 1)}
}

// poke triggers a forced check of d.
func (d *domain) poke() {
	d.forced.Store(true)
	d.nudge()
}

// nudge triggers a check of d.
func (d *domain) nudge() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// runDomain checks d at once, then whenever the time returned by the last
// step has come or Reload pokes it, until ctx is done.
func (m *Manager) runDomain(ctx context.Context, d *domain) {
	al := m.clock.Alarm()
	defer al.Stop()
	al.Set(m.clock.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-al.C():
		case <-d.wake:
		}
		next := m.step(ctx, d)
		if ctx.Err() != nil {
			return
		}
		al.Set(next)
	}
}

// step does what d needs now (issue, refresh ARI, renew) and returns when
// to take the next step.
func (m *Manager) step(ctx context.Context, d *domain) time.Time {
	forced := d.forced.Swap(false)
	if d.adopted.Swap(false) {
		d.failures, d.retryAt, d.waits = 0, time.Time{}, 0
	}
	now := m.clock.Now()
	if !forced && now.Before(d.retryAt) {
		return d.retryAt
	}
	cur := d.cert.Load()
	if cur == nil {
		return m.attempt(ctx, d, nil, opIssue, forced)
	}
	if d.renew.Load() || !cur.validAt(now) {
		return m.attempt(ctx, d, cur, opRenew, forced)
	}
	cur = m.refreshARI(ctx, d, cur, forced, now)
	if now.Before(cur.renewAt(m.renewBefore)) {
		d.failures, d.retryAt, d.waits = 0, time.Time{}, 0
		return m.nextCheck(d, cur, now)
	}
	return m.attempt(ctx, d, cur, opRenew, forced)
}

// attempt obtains a certificate for d, replacing cur (nil for a first
// issuance), installs it and returns when to take the next step: the next
// check of the new certificate after success, the retry after failure.
// In a fleet it first takes the fleet's order lock for d (see
// claimOrder); forced (a check Reload asked for) skips the fleet's
// backoff as it skips this node's.
func (m *Manager) attempt(ctx context.Context, d *domain, cur *certificate, op string, forced bool) time.Time {
	log := m.log.With("domain", d.name, "key_type", d.keyType, "operation", op)
	// One order at a time per name on this node (and, in a fleet, in the
	// fleet: the order lock is the name's).
	giveSlot, err := d.slot.take(ctx)
	if err != nil {
		return time.Time{} // removed or stopped
	}
	defer giveSlot()
	if m.fleet != nil {
		unlock, fresh, next, err := m.claimOrder(ctx, d, cur, forced, log)
		switch {
		case ctx.Err() != nil:
			return time.Time{} // removed or stopped
		case err != nil:
			return m.failed(d, op, err, false, log)
		case unlock == nil:
			return next
		}
		defer unlock()
		cur = fresh
	}
	if op == opRenew && d.failures == 0 && cur.validAt(m.clock.Now()) {
		m.setStatus(d, StatusRenewing, nil)
		log.Info("Renewing certificate", "expires_at", cur.leaf.NotAfter, "serial", cur.serial())
	}

	// Wait for the order rate limit before the order's timeout starts.
	if err := m.limit.wait(ctx); err != nil {
		return time.Time{}
	}
	d.ordering.Store(true)
	octx, giveBack := withToken(ctx, m.limit)
	octx, cancel := context.WithTimeout(octx, m.orderTimeout)
	issued, err := m.obtain(octx, d, cur)
	cancel()
	giveBack()
	d.ordering.Store(false)
	if ctx.Err() != nil {
		return time.Time{} // removed or stopped: neither success nor failure
	}

	if err != nil {
		return m.failed(d, op, err, m.fleet != nil, log)
	}

	m.metrics.observe(op, true)
	d.failures, d.retryAt = 0, time.Time{}
	d.renew.Store(false)
	m.install(d, issued, log)
	now := m.clock.Now()
	next := m.nextCheck(d, issued.certificate, now)
	if !now.Before(issued.renewAt(m.renewBefore)) {
		// Only the CA's renewal information (or a clock far ahead of the
		// CA's) can make a new certificate due; never renew it sooner than
		// a retry, so that this cannot become a loop.
		next = now.Add(m.retryBase)
		log.Warn("Certificate is due for renewal as soon as issued; renewing after the retry interval",
			"renew_at", issued.renewAt(m.renewBefore), "retry_in", m.retryBase.String())
	} else {
		log.Debug("Next renewal check", "at", next, "renew_at", issued.renewAt(m.renewBefore))
	}
	return next
}

// failed counts a failed attempt at d and returns when to retry; in a
// fleet, shared records it for the other nodes (this node holds the
// order lock).
func (m *Manager) failed(d *domain, op string, err error, shared bool, log *slog.Logger) time.Time {
	m.metrics.observe(op, false)
	d.failures++
	now := m.clock.Now()
	status, remaining := StatusFailed, time.Duration(0)
	if served := d.cert.Load(); served != nil && served.validAt(now) {
		status = StatusRenewing // never drop a valid certificate
		remaining = served.leaf.NotAfter.Sub(now)
	}
	wait := retryWait(m.retryBase, m.retryMax, d.failures, remaining)
	d.retryAt = now.Add(wait)
	m.setStatus(d, status, err)
	log.Error("ACME certificate request failed; retry scheduled", "error", err,
		"attempt", d.failures, "retry_in", wait.String(), "status", status)
	if shared {
		att := attemptRecord{Failures: d.failures, RetryAt: d.retryAt.UTC(), Node: m.fleet.node, Error: err.Error()}
		if err := m.fleet.store.recordFailure(d.key, att); err != nil {
			log.Warn("Recording the failed attempt for the fleet failed", "error", err)
		}
	}
	return d.retryAt
}

// install writes issued to the cache and serves it, unless d was removed
// meanwhile (then it is only cached).
func (m *Manager) install(d *domain, issued *issuedCert, log *slog.Logger) {
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if err := m.store.saveCertificate(d.key, issued.chainPEM, issued.keyPEM, issued.meta); err != nil {
		// The certificate is good; serving it beats throwing it away.
		log.Error("Caching certificate failed", "error", err)
	}
	if d.removed.Load() {
		return
	}
	d.cert.Store(issued.certificate)
	m.inst.Put(d.name, issued.tls)
	m.inst.SetStatus(d.name, d.keyType, StatusValid, nil)
	log.Info("Certificate reloaded", "expires_at", issued.leaf.NotAfter, "serial", issued.serial())
}

// setStatus reports a status for d unless d was removed.
func (m *Manager) setStatus(d *domain, status string, err error) {
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if !d.removed.Load() {
		m.inst.SetStatus(d.name, d.keyType, status, err)
	}
}

// refreshARI fetches the CA's renewal information for cur when it is stale
// at now (or when forced) and returns the certificate with it. Failures are
// logged and leave cur as it is: ARI only ever makes a renewal earlier.
func (m *Manager) refreshARI(ctx context.Context, d *domain, cur *certificate, forced bool, now time.Time) *certificate {
	if !m.ari || d.ariUnsupported || (!forced && !ariStale(cur, now)) {
		return cur
	}
	actx, cancel := context.WithTimeout(ctx, m.ariTimeout)
	defer cancel()
	fresh, err := m.client.GetRenewalInfo(actx, cur.leaf)
	if errors.Is(err, acmeproto.ErrUnsupported) {
		d.ariUnsupported = true
		return cur
	}
	if err != nil {
		m.log.Warn("Fetching ACME renewal information failed", "domain", d.name, "key_type", d.keyType, "error", err)
		return cur
	}
	updated := cur.withRenewalInfo(fresh)
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if !d.cert.CompareAndSwap(cur, updated) {
		return d.cert.Load() // Reload installed another certificate meanwhile
	}
	if err := m.store.saveMeta(d.key, updated.meta); err != nil {
		m.log.Warn("Caching ACME renewal information failed", "domain", d.name, "key_type", d.keyType, "error", err)
	}
	return updated
}
