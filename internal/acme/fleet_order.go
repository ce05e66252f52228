package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// claimOrder takes the fleet's order lock for d, so that one node at a
// time orders a domain, and reads the fleet's certificate and failed
// attempts, which another node may have changed since this one looked.
// It returns the function that releases the lock and the certificate the
// order replaces when this node is to order; a nil unlock and when to look
// again when not: another node holds the lock (its certificate will arrive
// through the watch), another node renewed the certificate meanwhile (it
// is installed), or the fleet's last attempt failed and its retry is not
// due (unless forced or Renew asked for a new certificate). An error
// means no lock could be had (etcd cannot be reached): no order then.
func (m *Manager) claimOrder(ctx context.Context, d *domain, cur *certificate, forced bool, log *slog.Logger) (unlock func(), fresh *certificate, next time.Time, err error) {
	// The lock is the name's, whatever the key type (see nameSlot); the
	// caller holds d.slot, so this node never takes it twice.
	unlock, err = m.fleet.tryLock(ctx, d.name)
	now := m.clock.Now()
	if errors.Is(err, errOrderLocked) {
		d.waits++
		m.metrics.lockBusy.Inc()
		var remaining time.Duration
		if cur.validAt(now) {
			remaining = cur.leaf.NotAfter.Sub(now)
			if d.waits == 1 {
				m.setStatus(d, StatusRenewing, nil)
			}
		}
		wait := retryWait(m.retryBase, m.retryMax, d.waits, remaining)
		level := slog.LevelDebug
		if d.waits == 1 {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "Another node of the fleet is ordering this certificate; installing it when it appears",
			"check_again_in", wait.String())
		return nil, cur, now.Add(wait), nil
	}
	if err != nil {
		return nil, cur, time.Time{}, err
	}
	d.waits = 0
	latest, att, err := m.fleet.store.latest(ctx, d.key)
	if err != nil {
		unlock()
		return nil, cur, time.Time{}, err
	}
	if latest != nil {
		m.adopt(d, latest)
	}
	// What this node serves now: the fleet's certificate if it was newer
	// (whether installed just now or by the watch before the lock was
	// taken), which counts as the renewal Renew asked for.
	cur = d.cert.Load()
	if cur.validAt(now) && !d.renew.Load() && now.Before(cur.renewAt(m.renewBefore)) {
		unlock()
		d.failures, d.retryAt = 0, time.Time{}
		return nil, cur, m.nextCheck(d, cur, now), nil
	}
	if att.Failures > 0 {
		d.failures = max(d.failures, att.Failures)
		if !forced && !d.renew.Load() && now.Before(att.RetryAt) {
			unlock()
			d.retryAt = att.RetryAt
			status := StatusFailed
			if cur.validAt(now) {
				status = StatusRenewing
			}
			m.setStatus(d, status, fmt.Errorf("the fleet's last attempt, on node %s, failed: %s", att.Node, att.Error))
			log.Info("The fleet's last attempt at this certificate failed; waiting for its retry",
				"node", att.Node, "attempt", att.Failures, "retry_at", att.RetryAt)
			return nil, cur, att.RetryAt, nil
		}
	}
	return unlock, cur, time.Time{}, nil
}

// managed reports whether key (see unitKey) is a managed unit.
func (m *Manager) managed(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.domains[key] != nil
}

// adoptShared is the watch's installer: it installs c, the fleet's
// certificate for the unit key, when this node manages it and c is newer
// than what it serves, and then has the unit's schedule start afresh.
func (m *Manager) adoptShared(key string, c *certificate) {
	m.mu.Lock()
	d := m.domains[key]
	m.mu.Unlock()
	if d != nil && m.adopt(d, c) {
		d.adopted.Store(true)
		d.nudge()
	}
}

// adopt serves c, the fleet's certificate for d, as a renewal of this
// node's would be, when it is usable and does not expire before the one
// d serves; it counts as the renewal Renew asked for. A certificate d
// serves already only brings its metadata (renewal information another
// node fetched). It reports whether c was installed.
func (m *Manager) adopt(d *domain, c *certificate) bool {
	if c.usableFor(d.name, m.clock.Now()) != nil || c.keyType() != d.keyType {
		return false
	}
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if d.removed.Load() {
		return false
	}
	cur := d.cert.Load()
	if cur != nil && cur.serial() == c.serial() {
		d.cert.CompareAndSwap(cur, &certificate{tls: cur.tls, leaf: cur.leaf, meta: c.meta})
		return false
	}
	if cur != nil && c.leaf.NotAfter.Before(cur.leaf.NotAfter) {
		return false
	}
	d.cert.Store(c)
	d.renew.Store(false)
	m.inst.Put(d.name, c.tls)
	m.inst.SetStatus(d.name, d.keyType, StatusValid, nil)
	m.log.Info("Certificate reloaded", "domain", d.name, "key_type", d.keyType, "expires_at", c.leaf.NotAfter,
		"serial", c.serial(), "source", "fleet")
	return true
}
