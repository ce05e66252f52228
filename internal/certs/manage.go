package certs

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"slices"
	"time"
)

// SetDefault makes the certificate of domain's host the one served when the
// SNI name matches no certificate or the client sends none; "" means none
// (such handshakes fail). The default follows the host's certificate as it
// is reloaded.
func (m *Manager) SetDefault(domain string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.def = normalise(domain)
	m.rebuildLocked()
}

// SetACME sets the ACME side consulted for TLS-ALPN-01 handshakes and by
// Reload of lets_encrypt hosts; nil removes it.
func (m *Manager) SetACME(a ACME) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acme = a
	m.rebuildLocked()
}

// Put installs or replaces the certificate of a lets_encrypt host and sets
// its status to "valid" with no error. It is ignored (and logged) for
// domains not Synced as lets_encrypt and for certificates without a
// parsable leaf. cert must not be modified afterwards.
func (m *Manager) Put(domain string, cert *tls.Certificate) {
	d := normalise(domain)
	if cert == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		m.log.Error("Ignoring an empty certificate put by ACME", "domain", d)
		return
	}
	c := *cert
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			m.log.Error("Ignoring an unparsable certificate put by ACME", "domain", d, "error", err)
			return
		}
		c.Leaf = leaf
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[d]
	if e == nil || e.host.Source != SourceLetsEncrypt {
		m.log.Warn("Ignoring a certificate put for a domain that is not a lets_encrypt host", "domain", d)
		return
	}
	e.cert, e.loadedAt = &c, m.o.Now()
	e.status, e.lastErr = StatusValid, ""
	m.rebuildLocked()
	m.met.reload(d, true)
	m.log.Info("Certificate reloaded", "domain", d, "source", SourceLetsEncrypt,
		"expires_at", c.Leaf.NotAfter.UTC(), "names", c.Leaf.DNSNames)
}

// SetStatus records the ACME side's status of a lets_encrypt host
// ("pending", "valid", "renewing", "failed", ...) and the error of its last
// attempt: nil clears LastError, a non-nil error sets it and counts a
// failed reload. It is ignored for other domains.
func (m *Manager) SetStatus(domain, status string, err error) {
	d := normalise(domain)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[d]
	if e == nil || e.host.Source != SourceLetsEncrypt {
		return
	}
	e.status = status
	e.lastErr = ""
	if err != nil {
		e.lastErr = err.Error()
		m.met.reload(d, false)
	}
}

// List returns every host with a certificate source, sorted by domain,
// including those whose certificate failed to load (with nil times and
// LastError set).
func (m *Manager) List() []Info {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.hosts))
	for d, e := range m.hosts {
		out = append(out, e.info(d, now))
	}
	slices.SortFunc(out, func(a, b Info) int { return cmp.Compare(a.Domain, b.Domain) })
	return out
}

// Info returns the Info of domain's host, or an error wrapping ErrNotFound
// if it has no certificate source.
func (m *Manager) Info(domain string) (Info, error) {
	d := normalise(domain)
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[d]
	if e == nil {
		return Info{}, fmt.Errorf("certificate of %q: %w", d, ErrNotFound)
	}
	return e.info(d, now), nil
}

// info describes e. Manager.mu must be held.
func (e *entry) info(d string, now time.Time) Info {
	in := Info{Domain: d, Source: e.host.Source, Status: e.status, Names: []string{}, LastError: e.lastErr}
	if e.cert != nil {
		leaf := e.cert.Leaf
		in.ExpiresAt = timePtr(leaf.NotAfter)
		in.NotBefore = timePtr(leaf.NotBefore)
		in.LastLoadedAt = timePtr(e.loadedAt)
		days := daysUntil(leaf.NotAfter, now)
		in.DaysUntilExpiration = &days
		in.Names = slices.Clone(leaf.DNSNames)
		if in.Names == nil {
			in.Names = []string{}
		}
		in.Issuer = leaf.Issuer.CommonName
		if in.Issuer == "" {
			in.Issuer = leaf.Issuer.String()
		}
	}
	switch {
	case e.cert != nil && now.After(e.cert.Leaf.NotAfter):
		// Whatever the source last said: an expired certificate is being
		// served (the ACME side says "valid" or "renewing" until its next
		// attempt).
		in.Status = StatusExpired
	case e.host.Source != SourceFile:
	case e.cert == nil:
		in.Status = StatusError
	default:
		in.Status = StatusValid
	}
	return in
}

// daysUntil is floor((t-now)/24h), negative once t has passed.
func daysUntil(t, now time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}

// timePtr returns t in UTC, to the second, as a pointer.
func timePtr(t time.Time) *time.Time {
	u := t.UTC().Truncate(time.Second)
	return &u
}
