package certs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// fileJob is what loading one file host needs, copied from its entry under
// Manager.mu so that the files can be read without holding it.
type fileJob struct {
	domain  string
	host    Host
	hash    [sha256.Size]byte // of the served chains' files
	hasCert bool
	initial bool // first load of a host that was just added
}

// fileResult is the outcome of loadFile.
type fileResult struct {
	job       fileJob
	chains    []chain // the new chains, nil on error or unchanged
	hash      [sha256.Size]byte
	unchanged bool   // the files hold what is already served
	err       error  // nil on success
	failKey   string // identifies err and the content it came from
	dirs      []string
}

// Sync makes hosts the whole set of hosts. New or changed file sources are
// loaded before Sync returns, so that they are served as soon as it
// returns; hosts no longer present are dropped; unchanged hosts are left
// alone (not reloaded). Hosts with an empty Source are ignored. Load
// failures are recorded and logged and never replace a working
// certificate. Sync also updates the watched directories of a running Run.
// Sync is safe for concurrent use, but the caller should serialise calls so
// that the last one carries the latest configuration.
func (m *Manager) Sync(hosts []Host) {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()

	want := make(map[string]Host, len(hosts))
	for _, h := range hosts {
		h.Domain = normalise(h.Domain)
		switch {
		case h.Domain == "" || h.Source == "":
			continue
		case h.Source != SourceFile && h.Source != SourceLetsEncrypt:
			m.log.Error("Unknown certificate source; host ignored", "domain", h.Domain, "source", h.Source)
			continue
		case h.Source != SourceFile:
			h.CertPath, h.KeyPath, h.Additional = "", "", nil
			if len(h.KeyTypes) == 0 {
				h.KeyTypes = []string{KeyECDSA}
			}
		default:
			h.KeyTypes = nil
			if len(h.Additional) == 0 {
				h.Additional = nil
			}
		}
		want[h.Domain] = h
	}

	var jobs []fileJob
	changed := false
	m.mu.Lock()
	for d, e := range m.hosts {
		if _, ok := want[d]; !ok {
			delete(m.hosts, d)
			m.met.forget(d)
			changed = changed || e.set != nil
			m.log.Info("Certificate removed", "domain", d, "source", e.host.Source)
		}
	}
	for d, h := range want {
		e := m.hosts[d]
		if e != nil && e.host.equal(&h) {
			continue
		}
		initial := e == nil
		if initial {
			e = &entry{}
			m.hosts[d] = e
		}
		// A changed source keeps serving its current certificates until
		// the new ones load (or, for lets_encrypt, are put); a
		// lets_encrypt host no longer using a key type stops serving it.
		wasACME := e.host.Source == SourceLetsEncrypt
		e.host = h
		e.hash = [sha256.Size]byte{}
		e.failKey, e.lastErr, e.dirs = "", "", nil
		if h.Source == SourceLetsEncrypt {
			if m.syncUnitsLocked(e, wasACME) {
				changed = true
			}
			continue
		}
		e.units = nil
		jobs = append(jobs, m.jobLocked(d, e, initial))
	}
	m.mu.Unlock()

	results := make([]fileResult, len(jobs))
	for i, j := range jobs {
		results[i] = m.loadFile(j)
	}

	m.mu.Lock()
	for _, r := range results {
		if m.applyLocked(r, true) {
			changed = true
		}
	}
	if changed {
		m.rebuildLocked()
	}
	m.mu.Unlock()
	m.notifyWatcher()
}

// Reload re-reads the certificate of domain now. For a file source it
// returns nil on success, also when the files are unchanged, and the load
// error (naming the file) otherwise, the old certificate being kept. For a
// lets_encrypt source it calls the ACME side's Reload. It returns an error
// wrapping ErrNotFound for a domain without a source, or a lets_encrypt
// domain when no ACME side is set.
func (m *Manager) Reload(domain string) error {
	d := normalise(domain)
	m.loadMu.Lock()
	m.mu.Lock()
	e := m.hosts[d]
	if e == nil || e.host.Source != SourceFile {
		var a ACME
		if e != nil {
			a = m.acme
		}
		m.mu.Unlock()
		m.loadMu.Unlock()
		switch {
		case e == nil:
			return fmt.Errorf("reload certificate of %q: %w", d, ErrNotFound)
		case a == nil:
			return fmt.Errorf("reload certificate of %q: %w (no ACME client is running)", d, ErrNotFound)
		}
		return a.Reload(d)
	}
	j := m.jobLocked(d, e, false)
	m.mu.Unlock()
	defer m.loadMu.Unlock()

	r := m.loadFile(j)
	m.mu.Lock()
	if m.applyLocked(r, true) {
		m.rebuildLocked()
	}
	m.mu.Unlock()
	return r.err
}

// recheck re-reads the file hosts for which match returns true (all when
// match is nil) and swaps in those that changed. Failures already recorded
// for the same content are not logged or counted again. periodic also
// runs the renewal warning.
func (m *Manager) recheck(match func(dirs []string) bool, periodic bool) {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()

	var jobs []fileJob
	m.mu.Lock()
	for d, e := range m.hosts {
		if e.host.Source == SourceFile && (match == nil || match(e.dirs)) {
			jobs = append(jobs, m.jobLocked(d, e, false))
		}
	}
	m.mu.Unlock()

	results := make([]fileResult, len(jobs))
	for i, j := range jobs {
		results[i] = m.loadFile(j)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, r := range results {
		if m.applyLocked(r, false) {
			changed = true
		}
	}
	if changed {
		m.rebuildLocked()
	}
	if periodic && m.o.RenewalWarning > 0 {
		now := m.o.Now()
		for d, e := range m.hosts {
			m.warnExpiringLocked(d, e, now)
		}
	}
}

// jobLocked copies what loading e needs. m.mu must be held.
func (m *Manager) jobLocked(domain string, e *entry, initial bool) fileJob {
	return fileJob{domain: domain, host: e.host, hash: e.hash, hasCert: e.set != nil, initial: initial}
}

// loadFile reads and, unless unchanged, parses the files of j. It takes no
// lock; m.loadMu must be held.
func (m *Manager) loadFile(j fileJob) fileResult {
	r := fileResult{job: j, dirs: watchDirs(j.host)}
	files, err := readHost(&j.host)
	if err != nil {
		r.err, r.failKey = err, "read\x00"+err.Error()
		return r
	}
	r.hash = hashFiles(files)
	if j.hasCert && r.hash == j.hash {
		r.unchanged = true
		return r
	}
	r.chains, r.err = parseHost(&j.host, files, m.o.Now())
	if r.err != nil {
		r.failKey = hex.EncodeToString(r.hash[:]) + "\x00" + r.err.Error()
	}
	return r
}

// applyLocked records r in its entry and reports whether the served
// certificates changed. A host's chains are replaced together or not at
// all: one that fails keeps every old one served. A failure is logged and counted unless the same
// failure (same content, same error) was already recorded and force is
// false. m.mu must be held.
func (m *Manager) applyLocked(r fileResult, force bool) bool {
	d := r.job.domain
	e := m.hosts[d]
	if e == nil || !e.host.equal(&r.job.host) {
		return false // changed meanwhile; cannot happen under loadMu
	}
	e.dirs = r.dirs
	switch {
	case r.err != nil:
		e.lastErr = r.err.Error()
		if !force && r.failKey == e.failKey {
			return false
		}
		e.failKey = r.failKey
		m.met.reload(d, false)
		if e.set != nil {
			m.log.Error("Certificate reload failed; still serving the previous certificate",
				"domain", d, "error", r.err, "expires_at", e.set.notAfter.UTC())
		} else {
			m.log.Error("Certificate load failed; no certificate served", "domain", d, "error", r.err)
		}
		return false
	case r.unchanged:
		e.lastErr, e.failKey = "", ""
		return false
	}
	now := m.o.Now()
	e.setChains(r.chains)
	e.hash = r.hash
	e.lastErr, e.failKey, e.warned = "", "", false
	m.met.reload(d, true)
	msg := "Certificate reloaded"
	if r.job.initial {
		msg = "Certificate loaded"
	}
	for _, c := range r.chains {
		m.log.Info(msg, "domain", d, "source", SourceFile, "cert_path", c.source, "key_type", c.keyType,
			"expires_at", c.cert.Leaf.NotAfter.UTC(), "names", c.cert.Leaf.DNSNames)
	}
	m.warnExpiringLocked(d, e, now)
	return true
}

// warnExpiringLocked logs, once per load, that a file certificate of e
// (the one expiring first) expires within Options.RenewalWarning. m.mu
// must be held.
func (m *Manager) warnExpiringLocked(d string, e *entry, now time.Time) {
	first := earliest(e.chains)
	if m.o.RenewalWarning <= 0 || e.warned || first == nil || e.host.Source != SourceFile {
		return
	}
	notAfter := first.cert.Leaf.NotAfter
	if notAfter.Sub(now) >= m.o.RenewalWarning {
		return
	}
	e.warned = true
	m.log.Warn("Certificate expires soon; file certificates are not renewed automatically",
		"domain", d, "cert_path", first.source, "expires_at", notAfter.UTC(),
		"days_until_expiration", daysUntil(notAfter, now))
}

// syncUnitsLocked makes e's ACME units those of e.host.KeyTypes: a key
// type it kept keeps its status (when the host was lets_encrypt before),
// a new one is pending, and the chains of key types no longer used are
// dropped. It reports whether the served chains changed. m.mu must be
// held.
func (m *Manager) syncUnitsLocked(e *entry, wasACME bool) bool {
	units := make(map[string]*unit, len(e.host.KeyTypes))
	for _, kt := range e.host.KeyTypes {
		if u := e.units[kt]; u != nil && wasACME {
			units[kt] = u
		} else {
			units[kt] = &unit{status: StatusPending}
		}
	}
	e.units = units
	if !wasACME {
		return false // a former file host serves its files until ACME puts
	}
	kept := slices.DeleteFunc(slices.Clone(e.chains), func(c chain) bool { return units[c.keyType] == nil })
	if len(kept) == len(e.chains) {
		return false
	}
	e.setChains(kept)
	return true
}

// watchDirs returns the directories whose events concern h: those of its
// files and, for symbolic links, of their targets. Paths are absolute.
func watchDirs(h Host) []string {
	var dirs []string
	add := func(p string) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return
		}
		if d := filepath.Dir(abs); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, pair := range h.pairs() {
		for _, p := range []string{pair.CertPath, pair.KeyPath} {
			if p == "" {
				continue
			}
			add(p)
			if t, err := filepath.EvalSymlinks(p); err == nil {
				add(t)
			}
		}
	}
	return dirs
}

// notifyWatcher tells a running Run to refresh its watches.
func (m *Manager) notifyWatcher() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
