package certs

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSyncAddChangeRemove(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	m, logs, _ := newTestManager(t, Options{})
	addr := serveHTTPS(t, m)

	a1 := root.leaf(t, leafOpts{names: []string{"a.test"}})
	b1 := root.leaf(t, leafOpts{names: []string{"b.test"}})
	ha := writePair(t, dir, "a1", "A.test.", a1) // normalised by Sync
	hb := writePair(t, dir, "b1", "b.test", b1)
	m.Sync([]Host{ha, hb})
	for _, c := range []struct {
		sni  string
		want pair
	}{{"a.test", a1}, {"b.test", b1}} {
		if err := wantSerial(t, addr, c.sni, c.want)(); err != nil {
			t.Fatalf("right after Sync: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "Certificate loaded"); n != 2 {
		t.Errorf("%d \"Certificate loaded\" lines, want 2", n)
	}
	loadedA := mustInfo(t, m, "a.test").LastLoadedAt

	// Unchanged hosts are not reloaded, even if their files changed.
	writePair(t, dir, "a1", "a.test", root.leaf(t, leafOpts{names: []string{"a.test"}}))
	m.Sync([]Host{ha, hb})
	if err := wantSerial(t, addr, "a.test", a1)(); err != nil {
		t.Errorf("unchanged host reloaded by Sync: %v", err)
	}
	if got := mustInfo(t, m, "a.test").LastLoadedAt; !got.Equal(*loadedA) {
		t.Errorf("LastLoadedAt moved from %v to %v", loadedA, got)
	}

	// Changed paths load the new files before Sync returns.
	a2 := root.leaf(t, leafOpts{names: []string{"a.test"}})
	ha2 := writePair(t, dir, "a2", "a.test", a2)
	m.Sync([]Host{ha2, hb})
	if err := wantSerial(t, addr, "a.test", a2)(); err != nil {
		t.Errorf("after changing paths: %v", err)
	}

	// Changed paths that fail keep the working certificate.
	broken := Host{Domain: "a.test", Source: SourceFile, CertPath: filepath.Join(dir, "missing.crt"), KeyPath: ha2.KeyPath}
	m.Sync([]Host{broken, hb})
	if err := wantSerial(t, addr, "a.test", a2)(); err != nil {
		t.Errorf("a failed load replaced the certificate: %v", err)
	}
	if in := mustInfo(t, m, "a.test"); !strings.Contains(in.LastError, "missing.crt") || in.Status != StatusValid {
		t.Errorf("Info after failed load = status %q, last_error %q", in.Status, in.LastError)
	}

	// Removed hosts are no longer served.
	m.Sync([]Host{hb})
	if _, err := peer(t, addr, "a.test"); err == nil {
		t.Error("removed host still served")
	}
	if got := len(m.List()); got != 1 {
		t.Errorf("List has %d entries after removal, want 1", got)
	}
	if err := m.Reload("a.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Reload of removed host: %v, want ErrNotFound", err)
	}

	// A host whose first load fails is listed with nulls and its error.
	m.Sync([]Host{hb, {Domain: "c.test", Source: SourceFile, CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")}})
	in := mustInfo(t, m, "c.test")
	if in.ExpiresAt != nil || in.DaysUntilExpiration != nil || in.Status != StatusError || !strings.Contains(in.LastError, "c.crt") {
		t.Errorf("Info of failed host = %+v", in)
	}
	if !strings.Contains(logs.String(), "Certificate load failed") {
		t.Error("failed load not logged")
	}
}

func mustInfo(t *testing.T, m *Manager, domain string) Info {
	t.Helper()
	in, err := m.Info(domain)
	if err != nil {
		t.Fatalf("Info(%q): %v", domain, err)
	}
	return in
}

func TestReload(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	m, logs, reg := newTestManager(t, Options{})
	addr := serveHTTPS(t, m)
	p1 := root.leaf(t, leafOpts{names: []string{"a.test"}})
	h := writePair(t, dir, "a", "a.test", p1)
	m.Sync([]Host{h, {Domain: "le.test", Source: SourceLetsEncrypt}, {Domain: "none.test"}})

	// Unchanged: success, nothing logged.
	if err := m.Reload("a.test"); err != nil {
		t.Fatalf("Reload unchanged: %v", err)
	}
	if strings.Contains(logs.String(), "Certificate reloaded") {
		t.Error("unchanged reload logged as reloaded")
	}

	// Broken: the error names the file, the old certificate stays.
	writeFile(t, h.KeyPath, []byte("garbage"))
	err := m.Reload("a.test")
	if err == nil || !strings.Contains(err.Error(), h.KeyPath) {
		t.Fatalf("Reload of a broken key: %v, want an error naming %s", err, h.KeyPath)
	}
	if err := wantSerial(t, addr, "a.test", p1)(); err != nil {
		t.Error(err)
	}
	// Forced reloads log and count every failure, even a repeated one.
	_ = m.Reload("a.test")
	if got := testutil.ToFloat64(m.met.reloads.WithLabelValues("a.test", "failure")); got != 2 {
		t.Errorf("failures counted %v, want 2", got)
	}

	// Changed: swapped, logged, counted.
	p2 := root.leaf(t, leafOpts{names: []string{"a.test", "www.a.test"}})
	writePair(t, dir, "a", "a.test", p2)
	if err := m.Reload("A.TEST"); err != nil {
		t.Fatalf("Reload changed: %v", err)
	}
	if err := wantSerial(t, addr, "www.a.test", p2)(); err != nil {
		t.Error(err)
	}
	if !containsAll(logs.String(), "Certificate reloaded", "domain=a.test", "expires_at=", "www.a.test") {
		t.Errorf("reload log missing fields:\n%s", logs.String())
	}
	if in := mustInfo(t, m, "a.test"); in.LastError != "" {
		t.Errorf("LastError %q after a successful reload", in.LastError)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}

	// Unknown domains, hosts without a source, lets_encrypt without ACME.
	for _, d := range []string{"unknown.test", "none.test", "le.test", ""} {
		if err := m.Reload(d); !errors.Is(err, ErrNotFound) {
			t.Errorf("Reload(%q) = %v, want ErrNotFound", d, err)
		}
	}
	if _, err := m.Info("none.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info of a host without source: %v, want ErrNotFound", err)
	}

	// lets_encrypt with ACME: the hook decides.
	var asked []string
	hookErr := errors.New("rate limited")
	m.SetACME(&fakeACME{reload: func(d string) error { asked = append(asked, d); return hookErr }})
	if err := m.Reload("LE.test"); !errors.Is(err, hookErr) {
		t.Errorf("Reload via ACME = %v, want the hook's error", err)
	}
	if len(asked) != 1 || asked[0] != "le.test" {
		t.Errorf("ACME Reload called with %v", asked)
	}
}

func TestPutAndSetStatus(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, logs, _ := newTestManager(t, Options{})
	addr := serveHTTPS(t, m)
	file := root.leaf(t, leafOpts{names: []string{"f.test"}})
	m.Sync([]Host{{Domain: "le.test", Source: SourceLetsEncrypt}, writePair(t, t.TempDir(), "f", "f.test", file)})

	in := mustInfo(t, m, "le.test")
	if in.Status != StatusPending || in.ExpiresAt != nil || m.Ready("le.test") {
		t.Errorf("fresh lets_encrypt host: %+v, ready %v", in, m.Ready("le.test"))
	}

	m.SetStatus("le.test", "", "failed", errors.New("acme: order failed"))
	if in := mustInfo(t, m, "le.test"); in.Status != "failed" || in.LastError != "acme: order failed" {
		t.Errorf("after SetStatus: %+v", in)
	}

	p := root.leaf(t, leafOpts{names: []string{"le.test"}})
	c, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c.Leaf = nil // Put parses it
	m.Put("le.test", &c)
	if err := wantSerial(t, addr, "le.test", p)(); err != nil {
		t.Fatal(err)
	}
	in = mustInfo(t, m, "le.test")
	if in.Status != StatusValid || in.LastError != "" || in.ExpiresAt == nil || !m.Ready("le.test") {
		t.Errorf("after Put: %+v", in)
	}
	if !containsAll(logs.String(), "Certificate reloaded", "domain=le.test", "source=lets_encrypt") {
		t.Errorf("Put not logged as a reload:\n%s", logs.String())
	}
	m.SetStatus("le.test", "", "renewing", nil)
	if in := mustInfo(t, m, "le.test"); in.Status != "renewing" || in.ExpiresAt == nil {
		t.Errorf("after SetStatus renewing: %+v", in)
	}

	// Ignored for file hosts and unknown domains.
	m.Put("f.test", &c)
	m.Put("unknown.test", &c)
	m.SetStatus("f.test", "", "failed", errors.New("x"))
	if err := wantSerial(t, addr, "f.test", file)(); err != nil {
		t.Errorf("Put replaced a file certificate: %v", err)
	}
	if in := mustInfo(t, m, "f.test"); in.Status != StatusValid || in.LastError != "" {
		t.Errorf("SetStatus changed a file host: %+v", in)
	}
	if _, err := m.Info("unknown.test"); !errors.Is(err, ErrNotFound) {
		t.Error("Put created a host")
	}
}

func TestListJSON(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// Fixed validity so that the golden output is stable.
	p := root.leaf(t, leafOpts{names: []string{"b.test", "www.b.test"},
		notBefore: now.Add(-24 * time.Hour), notAfter: now.Add(45*24*time.Hour + time.Hour)})
	m, _, _ := newTestManager(t, Options{Now: func() time.Time { return now }})
	hb := writePair(t, dir, "b", "b.test", p)
	// e.test serves an ECDSA and an RSA chain; the RSA one expires first,
	// so the top-level fields describe it.
	pe := root.leaf(t, leafOpts{names: []string{"e.test"},
		notBefore: now.Add(-24 * time.Hour), notAfter: now.Add(60 * 24 * time.Hour)})
	pr := root.leaf(t, leafOpts{names: []string{"e.test"}, rsa: true,
		notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(20*24*time.Hour + time.Hour)})
	he := writePair(t, dir, "e", "e.test", pe)
	he.Additional = []Pair{pairOf(writePair(t, dir, "e-rsa", "e.test", pr))}
	m.Sync([]Host{
		hb,
		he,
		{Domain: "a.test", Source: SourceFile, CertPath: filepath.Join(dir, "nope.crt"), KeyPath: filepath.Join(dir, "nope.key")},
		{Domain: "c.test", Source: SourceLetsEncrypt},
		{Domain: "d.test"},
	})
	got, err := json.MarshalIndent(m.List(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "domain": "a.test",
    "expires_at": null,
    "days_until_expiration": null,
    "source": "file",
    "status": "error",
    "names": [],
    "issuer": "",
    "not_before": null,
    "last_loaded_at": null,
    "last_error": "read certificate ` + filepath.Join(dir, "nope.crt") + `: no such file or directory",
    "chains": []
  },
  {
    "domain": "b.test",
    "expires_at": "2030-02-16T04:04:05Z",
    "days_until_expiration": 45,
    "source": "file",
    "status": "valid",
    "names": [
      "b.test",
      "www.b.test"
    ],
    "issuer": "fronttier test root",
    "not_before": "2030-01-01T03:04:05Z",
    "last_loaded_at": "2030-01-02T03:04:05Z",
    "last_error": "",
    "chains": [
      {
        "key_type": "ecdsa",
        "source": "` + filepath.Join(dir, "b.crt") + `",
        "not_after": "2030-02-16T04:04:05Z",
        "days_left": 45,
        "issuer": "fronttier test root"
      }
    ]
  },
  {
    "domain": "c.test",
    "expires_at": null,
    "days_until_expiration": null,
    "source": "lets_encrypt",
    "status": "pending",
    "names": [],
    "issuer": "",
    "not_before": null,
    "last_loaded_at": null,
    "last_error": "",
    "chains": []
  },
  {
    "domain": "e.test",
    "expires_at": "2030-01-22T04:04:05Z",
    "days_until_expiration": 20,
    "source": "file",
    "status": "valid",
    "names": [
      "e.test"
    ],
    "issuer": "fronttier test root",
    "not_before": "2029-12-31T03:04:05Z",
    "last_loaded_at": "2030-01-02T03:04:05Z",
    "last_error": "",
    "chains": [
      {
        "key_type": "ecdsa",
        "source": "` + filepath.Join(dir, "e.crt") + `",
        "not_after": "2030-03-03T03:04:05Z",
        "days_left": 60,
        "issuer": "fronttier test root"
      },
      {
        "key_type": "rsa",
        "source": "` + filepath.Join(dir, "e-rsa.crt") + `",
        "not_after": "2030-01-22T04:04:05Z",
        "days_left": 20,
        "issuer": "fronttier test root"
      }
    ]
  }
]`
	if string(got) != want {
		t.Errorf("List JSON:\n%s\nwant:\n%s", got, want)
	}
}

func TestInfoStatusAndDays(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	start := time.Now()
	p := root.leaf(t, leafOpts{names: []string{"a.test"}, notBefore: start.Add(-time.Hour), notAfter: start.Add(36 * time.Hour)})
	var now atomicTime
	now.set(start)
	m, _, _ := newTestManager(t, Options{Now: now.get})
	m.Sync([]Host{writePair(t, t.TempDir(), "a", "a.test", p)})
	tests := []struct {
		at         time.Time
		wantDays   int
		wantStatus string
	}{
		{at: start, wantDays: 1, wantStatus: StatusValid},
		{at: start.Add(35 * time.Hour), wantDays: 0, wantStatus: StatusValid},
		{at: start.Add(37 * time.Hour), wantDays: -1, wantStatus: StatusExpired},
		{at: start.Add(36*time.Hour + 25*time.Hour), wantDays: -2, wantStatus: StatusExpired},
	}
	for _, tt := range tests {
		now.set(tt.at)
		in := mustInfo(t, m, "a.test")
		if *in.DaysUntilExpiration != tt.wantDays || in.Status != tt.wantStatus {
			t.Errorf("at +%v: days %d status %q, want %d %q", tt.at.Sub(start), *in.DaysUntilExpiration, in.Status, tt.wantDays, tt.wantStatus)
		}
	}
}
