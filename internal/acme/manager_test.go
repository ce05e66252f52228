package acme

import (
	"crypto/x509"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	noPEM := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(noPEM, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := func() Options {
		return Options{CacheDir: filepath.Join(dir, "cache"), Installer: newFakeInstaller()}
	}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{name: "defaults", edit: func(*Options) {}},
		{name: "no installer", edit: func(o *Options) { o.Installer = nil }, wantErr: "Installer is required"},
		{name: "no cache dir", edit: func(o *Options) { o.CacheDir = "" }, wantErr: "CacheDir is required"},
		{name: "http directory", edit: func(o *Options) { o.DirectoryURL = "http://ca.example.test/dir" }, wantErr: "must be an https URL"},
		{name: "negative check", edit: func(o *Options) { o.RenewalCheck = -time.Second }, wantErr: "must not be negative"},
		{name: "missing CA root", edit: func(o *Options) { o.CARoot = filepath.Join(dir, "missing.pem") }, wantErr: "read CA root"},
		{name: "CA root without PEM", edit: func(o *Options) { o.CARoot = noPEM }, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.edit(&o)
			m, err := New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.directory != LetsEncryptProduction || m.renewalCheck != DefaultRenewalCheck || m.renewBefore != DefaultRenewBefore {
					t.Errorf("defaults: directory %s, check %v, before %v", m.directory, m.renewalCheck, m.renewBefore)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMetricsRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	tm := newTestManager(t, nil, func(o *Options) { o.Registerer = reg })
	if problems, err := testutil.CollectAndLint(tm.metrics.operations); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n := testutil.CollectAndCount(tm.metrics.operations, "acme_certificate_operations_total"); n != 4 {
		t.Errorf("series = %d, want 4 (issue|renew x success|failure)", n)
	}
	_, err := New(Options{CacheDir: t.TempDir(), Installer: newFakeInstaller(), Registerer: reg})
	if err == nil {
		t.Error("second registration on the same registry succeeded")
	}
}

func TestSyncInstallsCachedCertificates(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil)
	const fresh, expired, wrongName = "fresh.example.test", "expired.example.test", "wrong.example.test"
	c := writeCert(t, tm.store, fresh, fresh, time.Now().Add(60*24*time.Hour))
	writeCert(t, tm.store, expired, expired, time.Now().Add(-time.Hour))
	writeCert(t, tm.store, wrongName, "other.example.test", time.Now().Add(60*24*time.Hour))

	// No Run and an unreachable CA: the cache alone serves.
	tm.Sync([]string{fresh, expired, wrongName})
	events := tm.inst.snapshot()
	if got := serials(events, fresh); !slices.Equal(got, []string{c.leaf.SerialNumber.Text(16)}) {
		t.Errorf("%s: put serials %v, want the cached one", fresh, got)
	}
	if got := statuses(events, fresh); !slices.Equal(got, []string{StatusValid}) {
		t.Errorf("%s: statuses %v, want [valid]", fresh, got)
	}
	for _, name := range []string{expired, wrongName} {
		if n := len(puts(events, name)); n != 0 {
			t.Errorf("%s: %d certificates put", name, n)
		}
		if got := statuses(events, name); !slices.Equal(got, []string{StatusPending}) {
			t.Errorf("%s: statuses %v, want [pending]", name, got)
		}
	}

	// Syncing the same set again changes nothing.
	tm.Sync([]string{fresh, expired, wrongName})
	if n := len(tm.inst.snapshot()); n != len(events) {
		t.Errorf("second Sync of the same set made %d calls", n-len(events))
	}
	checkCacheModes(t, tm.cacheDir, fresh+".crt", fresh+".key", fresh+".json")
}

func TestSyncRejectsInvalidNames(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil)
	invalid := []string{"*.example.test", "192.0.2.1", "::1", "localhost", "", "a..example.test",
		"-a.example.test", "a_b.example.test", "bücher.example.test", strings.Repeat("a", 64) + ".example.test"}
	tm.Sync(append(slices.Clone(invalid), "Mixed.Example.TEST."))
	events := tm.inst.snapshot()
	for _, name := range invalid {
		e := lastStatus(events, name)
		if e.status != StatusFailed || !errors.Is(e.err, ErrInvalidDomain) {
			t.Errorf("%q: status %q, %v; want failed, ErrInvalidDomain", name, e.status, e.err)
		}
	}
	if got := statuses(events, "mixed.example.test"); !slices.Equal(got, []string{StatusPending}) {
		t.Errorf("normalised name statuses %v, want [pending]", got)
	}
	tm.mu.Lock()
	managed := slices.Collect(maps.Keys(tm.domains))
	tm.mu.Unlock()
	if !slices.Equal(managed, []string{"mixed.example.test"}) {
		t.Errorf("managed %v, want only mixed.example.test", managed)
	}
}

func TestSyncBeforeRunQueuesWork(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil) // the CA refuses connections
	const name = "queued.example.test"
	tm.Sync([]string{name})
	if got := statuses(tm.inst.snapshot(), name); !slices.Equal(got, []string{StatusPending}) {
		t.Fatalf("statuses before Run = %v, want [pending]", got)
	}
	stop := tm.run(t)
	events := tm.inst.waitFor(t, "two failures", func(ev []event) bool {
		return len(statuses(ev, name)) >= 3
	})
	stop()
	for _, e := range eventsFor(events, name)[1:] {
		if e.status != StatusFailed || e.err == nil {
			t.Errorf("status %q, %v; want failed with an error", e.status, e.err)
		}
	}
	if got := testutil.ToFloat64(tm.metrics.operations.WithLabelValues(opIssue, "failure")); got < 2 {
		t.Errorf("issue failures = %v, want >= 2", got)
	}

	// Run can start again; a domain removed meanwhile is not worked on.
	tm.Sync(nil)
	before := len(tm.inst.snapshot())
	stop = tm.run(t)
	stop()
	if n := len(tm.inst.snapshot()); n != before {
		t.Errorf("%d calls for a removed domain", n-before)
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil)
	const cached, empty = "cached.example.test", "empty.example.test"
	tm.Sync([]string{cached, empty})
	if err := tm.Reload("unmanaged.example.test"); !errors.Is(err, ErrNotManaged) {
		t.Errorf("unmanaged: %v, want ErrNotManaged", err)
	}
	if err := tm.Reload("*.example.test"); !errors.Is(err, ErrNotManaged) {
		t.Errorf("invalid: %v, want ErrNotManaged", err)
	}
	if err := tm.Reload(empty); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("no cache: %v, want ErrNoCertificate", err)
	}

	// A certificate written to the cache after Sync is picked up by Reload.
	c := writeCert(t, tm.store, cached, cached, time.Now().Add(60*24*time.Hour))
	if err := tm.Reload("Cached.Example.Test"); err != nil {
		t.Fatal(err)
	}
	events := tm.inst.snapshot()
	if got := serials(events, cached); !slices.Equal(got, []string{c.leaf.SerialNumber.Text(16)}) {
		t.Errorf("put serials %v, want the cached one", got)
	}
	if got := statuses(events, cached); !slices.Equal(got, []string{StatusPending, StatusValid}) {
		t.Errorf("statuses %v, want [pending valid]", got)
	}
	if !strings.Contains(tm.logs.String(), `msg="Certificate reloaded" component=acme domain=cached.example.test`) {
		t.Errorf("no Certificate reloaded log:\n%s", tm.logs)
	}
}

func TestRenewAt(t *testing.T) {
	t.Parallel()
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ari := func(selected time.Time) *acmeproto.RenewalInfo {
		ri := &acmeproto.RenewalInfo{SelectedTime: selected}
		ri.SuggestedWindow.Start, ri.SuggestedWindow.End = selected.Add(-time.Hour), selected.Add(time.Hour)
		return ri
	}
	tests := []struct {
		name string
		ri   *acmeproto.RenewalInfo
		want time.Time
	}{
		{name: "no ARI", want: notAfter.Add(-30 * 24 * time.Hour)},
		{name: "ARI earlier", ri: ari(notAfter.Add(-60 * 24 * time.Hour)), want: notAfter.Add(-60 * 24 * time.Hour)},
		{name: "ARI later", ri: ari(notAfter.Add(-24 * time.Hour)), want: notAfter.Add(-30 * 24 * time.Hour)},
		{name: "ARI without window", ri: &acmeproto.RenewalInfo{SelectedTime: notAfter.Add(-60 * 24 * time.Hour)}, want: notAfter.Add(-30 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &certificate{leaf: &x509.Certificate{NotAfter: notAfter}, meta: certMeta{RenewalInfo: tt.ri}}
			if got := c.renewAt(30 * 24 * time.Hour); !got.Equal(tt.want) {
				t.Errorf("renewAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, time.Hour}, {100, time.Hour},
	}
	for _, tt := range tests {
		if got := backoff(time.Minute, time.Hour, tt.failures); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

func TestStoreSeparatesCAs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	staging, err := newFileStore(root, LetsEncryptStaging)
	if err != nil {
		t.Fatal(err)
	}
	production, err := newFileStore(root, LetsEncryptProduction)
	if err != nil {
		t.Fatal(err)
	}
	if staging.certDir("a.example.test") == production.certDir("a.example.test") {
		t.Errorf("staging and production share %s", staging.certDir("a.example.test"))
	}
	if got, want := production.ca, "acme-v02.api.letsencrypt.org-directory"; got != want {
		t.Errorf("CA directory name %q, want %q", got, want)
	}
	for email, want := range map[string]string{"": "default", "Admin@Example.com": "admin@example.com", "../x": "x"} {
		if got := filepath.Base(production.accountDir(email)); got != want {
			t.Errorf("account dir for %q = %q, want %q", email, got, want)
		}
	}
}
