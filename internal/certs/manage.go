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

// Put installs or replaces the chain of a lets_encrypt host that has the
// key type of cert (see KeyType), the host's other chains staying as they
// are, and sets that key type's status to "valid" with no error. It is
// ignored (and logged) for domains not Synced as lets_encrypt, for key
// types the host was not Synced with and for certificates without a
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
	kt := KeyType(c.Leaf.PublicKey)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[d]
	if e == nil || e.host.Source != SourceLetsEncrypt {
		m.log.Warn("Ignoring a certificate put for a domain that is not a lets_encrypt host", "domain", d)
		return
	}
	u := e.units[kt]
	if u == nil {
		m.log.Warn("Ignoring a certificate put with a key type the domain does not use", "domain", d, "key_type", kt)
		return
	}
	// The chain of this key type is replaced, and so are the file
	// chains of a host that was a file host until now.
	chains := slices.DeleteFunc(slices.Clone(e.chains), func(c chain) bool { return c.keyType == kt || c.source != SourceACME })
	chains = append(chains, chain{cert: &c, keyType: kt, source: SourceACME, loadedAt: m.o.Now()})
	slices.SortStableFunc(chains, func(a, b chain) int { return cmp.Compare(keyRank(a.keyType), keyRank(b.keyType)) })
	e.setChains(chains)
	u.status, u.lastErr = StatusValid, ""
	m.rebuildLocked()
	m.met.reload(d, true)
	m.log.Info("Certificate reloaded", "domain", d, "source", SourceLetsEncrypt, "key_type", kt,
		"expires_at", c.Leaf.NotAfter.UTC(), "names", c.Leaf.DNSNames)
}

// SetStatus records the ACME side's status of the keyType chain of a
// lets_encrypt host ("pending", "valid", "renewing", "failed", ...; ""
// keyType means every chain of the host) and the error of its last
// attempt: nil clears it, a non-nil error sets it and counts a failed
// reload. It is ignored for other domains and key types.
func (m *Manager) SetStatus(domain, keyType, status string, err error) {
	d := normalise(domain)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[d]
	if e == nil || e.host.Source != SourceLetsEncrypt {
		return
	}
	for kt, u := range e.units {
		if keyType != "" && kt != keyType {
			continue
		}
		u.status, u.lastErr = status, ""
		if err != nil {
			u.lastErr = err.Error()
		}
	}
	if err != nil {
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

// info describes e: the top-level fields describe the chain that expires
// first. Manager.mu must be held.
func (e *entry) info(d string, now time.Time) Info {
	in := Info{Domain: d, Source: e.host.Source, Names: []string{}, LastError: e.lastErr,
		Chains: make([]ChainInfo, 0, len(e.chains))}
	first := earliest(e.chains)
	if first != nil {
		leaf := first.cert.Leaf
		in.ExpiresAt = timePtr(leaf.NotAfter)
		in.NotBefore = timePtr(leaf.NotBefore)
		in.LastLoadedAt = timePtr(first.loadedAt)
		days := daysUntil(leaf.NotAfter, now)
		in.DaysUntilExpiration = &days
		in.Names = slices.Clone(leaf.DNSNames)
		if in.Names == nil {
			in.Names = []string{}
		}
		in.Issuer = issuer(leaf)
	}
	if e.set != nil {
		for _, c := range e.set.certs {
			i := slices.IndexFunc(e.chains, func(ch chain) bool { return ch.cert == c })
			ch := e.chains[i]
			ci := ChainInfo{KeyType: ch.keyType, Source: ch.source, NotAfter: *timePtr(c.Leaf.NotAfter),
				DaysLeft: daysUntil(c.Leaf.NotAfter, now), Issuer: issuer(c.Leaf)}
			if u := e.units[ch.keyType]; u != nil {
				ci.Status, ci.LastError = u.status, u.lastErr
			}
			in.Chains = append(in.Chains, ci)
		}
	}
	if e.host.Source == SourceLetsEncrypt {
		in.Status, in.LastError = e.acmeStatus()
	}
	switch {
	case first != nil && now.After(first.cert.Leaf.NotAfter):
		// Whatever the source last said: an expired certificate is being
		// served (the ACME side says "valid" or "renewing" until its next
		// attempt).
		in.Status = StatusExpired
	case e.host.Source != SourceFile:
	case first == nil:
		in.Status = StatusError
	default:
		in.Status = StatusValid
	}
	return in
}

// acmeStatus sums up the units of a lets_encrypt host: the least settled
// status (failed, then pending, then renewing, then valid, then any
// other) and the first error, in key type order. So "valid" means that
// every key type's chain is served and none is being worked on.
func (e *entry) acmeStatus() (status, lastErr string) {
	rank := func(s string) int {
		switch s {
		case statusFailed:
			return 0
		case StatusPending:
			return 1
		case statusRenewing:
			return 2
		case StatusValid:
			return 4
		default:
			return 3
		}
	}
	best := 5
	for _, kt := range e.host.KeyTypes {
		u := e.units[kt]
		if u == nil {
			continue
		}
		if r := rank(u.status); r < best {
			best, status = r, u.status
		}
		if lastErr == "" {
			lastErr = u.lastErr
		}
	}
	return status, lastErr
}

// issuer is the issuer's common name, or its whole DN if it has none.
func issuer(leaf *x509.Certificate) string {
	if leaf.Issuer.CommonName != "" {
		return leaf.Issuer.CommonName
	}
	return leaf.Issuer.String()
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
