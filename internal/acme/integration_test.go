package acme

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/clock/clocktest"
)

// Integration tests against a real Pebble; see pebble_test.go.

func TestIssueThenServeFromCacheWithCAStopped(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	reg := prometheus.NewPedanticRegistry()
	tm := newTestManager(t, env, func(o *Options) { o.Registerer = reg })
	const name = "a.example.test"

	tm.Sync([]string{"A.Example.Test."})
	if got := statuses(tm.inst.snapshot(), name); !slices.Equal(got, []string{StatusPending}) {
		t.Fatalf("statuses right after Sync = %v, want [pending]", got)
	}
	stop := tm.run(t)
	events := tm.inst.waitFor(t, "status valid", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid
	})
	if got := statuses(events, name); !slices.Equal(got, []string{StatusPending, StatusValid}) {
		t.Errorf("statuses = %v, want [pending valid]", got)
	}
	certs := puts(events, name)
	if len(certs) != 1 {
		t.Fatalf("got %d certificates, want 1", len(certs))
	}
	cert := certs[0]
	intermediates := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		intermediates.AddCert(c)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         env.issuingRoots(t),
		Intermediates: intermediates,
	}); err != nil {
		t.Errorf("certificate does not verify against Pebble's root: %v", err)
	}

	t.Run("metrics", func(t *testing.T) {
		if got := testutil.ToFloat64(tm.metrics.operations.WithLabelValues(opIssue, "success")); got != 1 {
			t.Errorf("issue successes = %v, want 1", got)
		}
		problems, err := testutil.GatherAndLint(reg)
		if err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
		if n, err := testutil.GatherAndCount(reg, "acme_certificate_operations_total"); err != nil || n != 4 {
			t.Errorf("series = %d, %v; want 4", n, err)
		}
	})
	t.Run("log", func(t *testing.T) {
		var found bool
		for line := range strings.Lines(tm.logs.String()) {
			if strings.Contains(line, `msg="Certificate reloaded"`) && strings.Contains(line, "component=acme") &&
				strings.Contains(line, "domain="+name) && strings.Contains(line, "expires_at=") {
				found = true
			}
		}
		if !found {
			t.Errorf("no Certificate reloaded line with component=acme, domain and expires_at in\n%s", tm.logs)
		}
	})
	t.Run("cache modes", func(t *testing.T) {
		checkCacheModes(t, tm.cacheDir, "account.key", "account.json", name+".crt", name+".key", name+".json")
	})

	// A restart with the CA down serves the cached certificate from Sync.
	stop()
	env.pebble.stop()
	if err := env.get(t.Context(), env.DirectoryURL, nil); err == nil {
		t.Fatal("pebble still answers after stop")
	}
	tm2 := newTestManager(t, nil, func(o *Options) {
		o.DirectoryURL, o.CARoot, o.CacheDir = env.DirectoryURL, env.CARoot, tm.cacheDir
	})
	tm2.Sync([]string{name})
	events = tm2.inst.snapshot()
	if got := serials(events, name); !slices.Equal(got, serials(tm.inst.snapshot(), name)) {
		t.Errorf("after restart Sync put serials %v, want the cached %v", got, serials(tm.inst.snapshot(), name))
	}
	if got := statuses(events, name); !slices.Equal(got, []string{StatusValid}) {
		t.Errorf("after restart statuses = %v, want [valid]", got)
	}
}

// checkCacheModes checks that every file under root is 0600 and every
// directory 0700, and that files with each of the given names exist.
func checkCacheModes(t *testing.T, root string, names ...string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
		seen[d.Name()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("no file %s in the cache", name)
		}
	}
}

func TestTLSALPN01WhenHTTP01Fails(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	const name = "alpn.example.test"
	env.front.refuseHTTP.Store(name, true)
	tm := newTestManager(t, env, nil)
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool { return len(puts(ev, name)) > 0 })
	if err := puts(events, name)[0].Leaf.VerifyHostname(name); err != nil {
		t.Error(err)
	}
	if env.front.alpnCount(name) == 0 {
		t.Error("no TLS-ALPN-01 challenge certificate was served")
	}
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	for _, s := range got {
		if len(want) > 0 && s == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

func TestRenewalWhenARISaysSo(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	tm := newTestManager(t, env, func(o *Options) { o.RenewalCheck = time.Hour })
	const name = "ari.example.test"
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid
	})
	first := puts(events, name)[0]

	// The CA asks for renewal now; Reload's check fetches the new window.
	now := time.Now()
	env.setRenewalInfo(t, first.Leaf, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if err := tm.Reload(name); err != nil {
		t.Fatal(err)
	}
	events = tm.inst.waitFor(t, "a renewed certificate", func(ev []event) bool {
		return len(serials(ev, name)) >= 2 && lastStatus(ev, name).status == StatusValid
	})
	if got := statuses(events, name); !containsInOrder(got, []string{StatusValid, StatusRenewing, StatusValid}) {
		t.Errorf("statuses = %v, want valid, renewing, valid in order", got)
	}
}

func TestFailureKeepsValidCertificate(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	const good, bad = "good.example.test", "bad.example.test"
	// Nothing listens on 127.0.0.2, so validation of bad fails.
	env.setA(t, bad, "127.0.0.2")
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	tm.ari = false
	refuse := tm.refuseOrders()
	tm.Sync([]string{good, bad})
	tm.run(t)

	failed := func(ev []event, name, status string) int {
		n := 0
		for _, e := range ev {
			if e.domain == name && e.status == status && e.err != nil {
				n++
			}
		}
		return n
	}
	tm.inst.waitFor(t, "a failed issuance", func(ev []event) bool {
		return failed(ev, bad, StatusFailed) >= 1 && lastStatus(ev, good).status == StatusValid
	})
	fc.Set(fc.Now().Add(time.Minute)) // past the retry
	events := tm.inst.waitFor(t, "the retry failing", func(ev []event) bool {
		return failed(ev, bad, StatusFailed) >= 2
	})
	if n := len(puts(events, bad)); n != 0 {
		t.Errorf("%d certificates put for %s", n, bad)
	}
	if got := testutil.ToFloat64(tm.metrics.operations.WithLabelValues(opIssue, "failure")); got < 2 {
		t.Errorf("issue failures = %v, want >= 2", got)
	}
	if !strings.Contains(tm.logs.String(), "retry scheduled") {
		t.Error("no log of the scheduled retry")
	}

	// Renewal of good fails too now: the valid certificate stays.
	installed := serials(events, good)
	refuse.Store(true)
	fc.Set(dueAt(puts(events, good)[0].Leaf, DefaultRenewBefore))
	tm.inst.waitFor(t, "a failed renewal", func(ev []event) bool { return failed(ev, good, StatusRenewing) >= 1 })
	fc.Set(fc.Now().Add(time.Minute)) // past the retry
	events = tm.inst.waitFor(t, "the retry failing", func(ev []event) bool {
		return failed(ev, good, StatusRenewing) >= 2
	})
	if got := serials(events, good); !slices.Equal(got, installed) {
		t.Errorf("serials put for %s = %v, want only %v", good, got, installed)
	}
	for _, e := range events {
		if e.domain == good && e.status == StatusFailed {
			t.Errorf("status failed for %s although its certificate is valid", good)
		}
	}
	if cur := tm.domainState(good).cert.Load(); cur == nil || cur.serial() != strings.ToUpper(installed[0]) {
		t.Errorf("served certificate changed")
	}
	if got := testutil.ToFloat64(tm.metrics.operations.WithLabelValues(opRenew, "failure")); got < 2 {
		t.Errorf("renew failures = %v, want >= 2", got)
	}
}

func TestRemovedDomainStopsRenewal(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	tm.ari = false
	const name, other = "gone.example.test", "stay.example.test"
	tm.Sync([]string{name, other})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificates", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid && lastStatus(ev, other).status == StatusValid
	})
	fc.WaitArmedN(t, waitTimeout, "for both next checks", 2, func(at time.Time) bool { return at.After(fc.Now()) })
	fc.Set(dueAt(puts(events, name)[0].Leaf, DefaultRenewBefore).Add(time.Minute))
	tm.inst.waitFor(t, "renewal", func(ev []event) bool { return len(serials(ev, name)) >= 2 })

	d := tm.domainState(name)
	tm.Sync([]string{other})
	select {
	case <-d.done:
	case <-time.After(waitTimeout):
		t.Fatal("domain goroutine still running after removal")
	}
	before := len(eventsFor(tm.inst.snapshot(), name))
	// The goroutine that renewed name has exited; nothing else may act for it.
	if err := tm.Reload(name); !errors.Is(err, ErrNotManaged) {
		t.Errorf("Reload(%s) = %v, want ErrNotManaged", name, err)
	}
	// Pebble's new certificates are due at once on the fake clock: each
	// move past the retry interval renews other again.
	tm.inst.waitFor(t, "other domain renewed", func(ev []event) bool { return len(serials(ev, other)) >= 2 })
	fc.Set(fc.WaitArmed(t, waitTimeout, "for the next renewal", func(at time.Time) bool { return at.After(fc.Now()) }))
	tm.inst.waitFor(t, "other domain renewed again", func(ev []event) bool { return len(serials(ev, other)) >= 3 })
	if after := len(eventsFor(tm.inst.snapshot(), name)); after != before {
		t.Errorf("%d events for %s after its removal", after-before, name)
	}
	for _, e := range tm.inst.snapshot() {
		if e.domain != name && e.domain != other {
			t.Errorf("event for unmanaged domain %s", e.domain)
		}
	}
}

func eventsFor(events []event, name string) []event {
	var out []event
	for _, e := range events {
		if e.domain == name {
			out = append(out, e)
		}
	}
	return out
}
