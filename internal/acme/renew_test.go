package acme

import (
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"
)

// TestRenewOrdersNewCertificate: Renew orders a new certificate for a
// domain that is not due, says "renewing" at once, and keeps retrying a
// failed order until one succeeds.
func TestRenewOrdersNewCertificate(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	refuse := tm.refuseOrders()
	const name = "renew-now.example.test"
	if err := tm.Renew(name); !errors.Is(err, ErrNotManaged) {
		t.Errorf("Renew of an unmanaged domain = %v, want ErrNotManaged", err)
	}
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool { return lastStatus(ev, name).status == StatusValid })
	first := serials(events, name)

	if err := tm.Renew("Renew-Now.Example.Test."); err != nil {
		t.Fatal(err)
	}
	// The status is set before Renew returns, so the API shows it at once.
	if e := lastStatus(tm.inst.snapshot(), name); e.status != StatusRenewing {
		t.Errorf("status right after Renew = %q, want renewing", e.status)
	}
	events = tm.inst.waitFor(t, "a renewed certificate", func(ev []event) bool {
		return len(serials(ev, name)) == 2 && lastStatus(ev, name).status == StatusValid
	})
	if got := serials(events, name); got[0] != first[0] {
		t.Errorf("serials %v, want %v then a new one", got, first)
	}

	// A renewal that fails is retried until it succeeds, although the
	// certificate is not due.
	refuse.Store(true)
	if err := tm.Renew(name); err != nil {
		t.Fatal(err)
	}
	tm.inst.waitFor(t, "a failed renewal", func(ev []event) bool {
		e := lastStatus(ev, name)
		return e.status == StatusRenewing && e.err != nil
	})
	refuse.Store(false)
	fc.Set(fc.WaitArmed(t, waitTimeout, "for the retry", func(at time.Time) bool { return at.After(fc.Now()) }))
	tm.inst.waitFor(t, "a certificate after the retry", func(ev []event) bool {
		return len(serials(ev, name)) == 3 && lastStatus(ev, name).status == StatusValid
	})
	// Then the schedule is back to the certificate's due time.
	due := dueAt(tm.domainState(name).cert.Load().leaf, DefaultRenewBefore)
	fc.WaitArmed(t, waitTimeout, "at most the due time", func(at time.Time) bool { return at.After(fc.Now()) && !at.After(due) })
}

// TestProfile: the configured profile is ordered when the CA offers it; a
// profile it does not offer is logged once and the CA's default ordered.
func TestProfile(t *testing.T) {
	t.Parallel()
	const short = 6 * 24 * time.Hour
	env := startPebble(t, pebbleOptions{profiles: map[string]time.Duration{"shortlived": short}})

	tm := newTestManager(t, env, func(o *Options) { o.Profile = "shortlived" })
	const name = "profile.example.test"
	tm.Sync([]string{name})
	stop := tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool { return lastStatus(ev, name).status == StatusValid })
	leaf := puts(events, name)[0].Leaf
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < short-time.Minute || got > short {
		t.Errorf("lifetime %v, want the shortlived profile's %v", got, short)
	}
	stop()

	tm = newTestManager(t, env, func(o *Options) { o.Profile = "nosuch" })
	names := []string{"a.profile.example.test", "b.profile.example.test"}
	tm.Sync(names)
	tm.run(t)
	tm.inst.waitFor(t, "certificates", func(ev []event) bool {
		return lastStatus(ev, names[0]).status == StatusValid && lastStatus(ev, names[1]).status == StatusValid
	})
	if n := strings.Count(tm.logs.String(), "does not offer the configured certificate profile"); n != 1 {
		t.Errorf("%d warnings about the profile, want 1:\n%s", n, tm.logs)
	}
	if !strings.Contains(tm.logs.String(), `offered="[default shortlived]"`) {
		t.Errorf("the warning does not list the offered profiles:\n%s", tm.logs)
	}
}

// TestPreferredChain: with alternate chains on offer, the chain ending at
// the preferred root is served and cached; without a preference, or when
// no chain matches, the CA's default chain.
func TestPreferredChain(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{alternateRoots: 1})
	root0, root1 := env.root(t, 0), env.root(t, 1)
	tests := []struct {
		name      string
		preferred string
		want      *x509.Certificate
		warn      bool
	}{
		{name: "default", want: root0},
		{name: "alternate root", preferred: root1.Subject.CommonName, want: root1},
		{name: "default root named", preferred: root0.Subject.CommonName, want: root0},
		{name: "no match", preferred: "No Such Root", want: root0, warn: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := newTestManager(t, env, func(o *Options) { o.PreferredChain = tt.preferred })
			name := "chain" + string(rune('a'+i)) + ".example.test"
			tm.Sync([]string{name})
			stop := tm.run(t)
			defer stop()
			events := tm.inst.waitFor(t, "certificate", func(ev []event) bool { return lastStatus(ev, name).status == StatusValid })
			cert := puts(events, name)[0]
			top, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1])
			if err != nil {
				t.Fatal(err)
			}
			if got := top.Issuer.CommonName; got != tt.want.Subject.CommonName {
				t.Errorf("chain ends at %q, want %q", got, tt.want.Subject.CommonName)
			}
			if err := top.CheckSignatureFrom(tt.want); err != nil {
				t.Errorf("chain not signed by the wanted root: %v", err)
			}
			if got := strings.Contains(tm.logs.String(), "no chain with the preferred name"); got != tt.warn {
				t.Errorf("warning logged: %v, want %v", got, tt.warn)
			}
			cached, err := tm.store.loadCertificate(name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(cached.tls.Certificate, cert.Certificate, slices.Equal) {
				t.Error("the cache holds another chain than the one served")
			}
		})
	}
}
