package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	tu "fronttier/internal/testutil"
)

func TestMetricsLint(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, _, reg := newTestManager(t, Options{})
	m.Sync([]Host{writePair(t, t.TempDir(), "a", "a.test", root.leaf(t, leafOpts{names: []string{"a.test"}}))})
	m.met.reload("a.test", false)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	// The manual's alert rule fixes the name certificate_days_until_expiration;
	// promlint prefers base units (seconds), which the extra
	// certificate_expiration_timestamp_seconds provides. That one
	// complaint is expected; anything else is a bug.
	for _, p := range problems {
		if p.Metric == "certificate_days_until_expiration" && strings.Contains(p.Text, `base unit "seconds" instead of "days"`) {
			continue
		}
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(reg, "tls_handshake_errors_total"); err != nil || n != 9 {
		t.Errorf("tls_handshake_errors_total has %d series (%v), want every reason at zero", n, err)
	}
}

func TestExpiryMetrics(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	var clock atomicTime
	clock.set(now)
	p := root.leaf(t, leafOpts{names: []string{"a.test"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(36 * time.Hour)})
	m, _, reg := newTestManager(t, Options{Now: clock.get})
	dir := t.TempDir()
	m.Sync([]Host{
		writePair(t, dir, "a", "a.test", p),
		{Domain: "b.test", Source: SourceFile, CertPath: dir + "/none.crt", KeyPath: dir + "/none.key"},
	})
	want := func(days float64) string {
		return fmt.Sprintf(`
# HELP certificate_days_until_expiration Days until the served certificate of the virtual host expires (fractional, negative once expired; the first to expire, when it serves several chains).
# TYPE certificate_days_until_expiration gauge
certificate_days_until_expiration{domain="a.test"} %g
# HELP certificate_expiration_timestamp_seconds Unix time at which the served certificate of the virtual host expires (the first to expire, when it serves several chains).
# TYPE certificate_expiration_timestamp_seconds gauge
certificate_expiration_timestamp_seconds{domain="a.test"} %d
`, days, now.Add(36*time.Hour).Unix())
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(1.5)),
		"certificate_days_until_expiration", "certificate_expiration_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// Computed at scrape time: no reload needed to see time pass.
	clock.set(now.Add(48 * time.Hour))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(-0.5)),
		"certificate_days_until_expiration", "certificate_expiration_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// Dropped hosts lose their series.
	m.Sync(nil)
	if n, err := testutil.GatherAndCount(reg, "certificate_days_until_expiration", "certificate_reloads_total"); err != nil || n != 0 {
		t.Errorf("%d series left after removing every host (%v)", n, err)
	}
}

func TestHandshakeReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg  string
		want string
	}{
		{`no certificate for server name "x.test"`, ReasonNoCertificate},
		{`no certificate for server name: client sent no SNI and there is no default certificate`, ReasonNoCertificate},
		{`no certificate for server name "EOF"`, ReasonNoCertificate},
		{"tls: no certificates configured", ReasonNoCertificate},
		{"tls: client offered only unsupported versions: [302 301]", ReasonUnsupportedVersion},
		{"tls: unsupported SSLv2 handshake received", ReasonUnsupportedVersion},
		{"tls: no cipher suite supported by both client and server", ReasonNoCipherSuite},
		{"tls: no ECDHE curve supported by both client and server", ReasonNoCipherSuite},
		{"remote error: tls: bad certificate", ReasonBadCertificate},
		{"remote error: tls: unknown certificate authority", ReasonBadCertificate},
		{"client sent an HTTP request to an HTTPS server", ReasonNotTLS},
		{"tls: first record does not look like a TLS handshake", ReasonNotTLS},
		{"EOF", ReasonEOF},
		{"read tcp 127.0.0.1:443->127.0.0.1:5000: unexpected EOF", ReasonEOF},
		{"read tcp 127.0.0.1:443->127.0.0.1:5000: i/o timeout", ReasonTimeout},
		{"read tcp 127.0.0.1:443->127.0.0.1:5000: read: connection reset by peer", ReasonReset},
		{"tls: client requested unsupported application protocols ([acme-tls/1])", ReasonOther},
		{"remote error: tls: handshake failure", ReasonOther},
	}
	for _, tt := range tests {
		if got := handshakeReason(tt.msg); got != tt.want {
			t.Errorf("handshakeReason(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestHandshakeErrorLog(t *testing.T) {
	t.Parallel()
	m, _, _ := newTestManager(t, Options{})
	buf := &tu.SyncBuffer{}
	l := m.HandshakeErrorLog(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("http: TLS handshake error from [::1]:51234: %v", "EOF")
	l.Printf("http: TLS handshake error from 10.0.0.1:443: tls: client offered only unsupported versions: [301]")
	l.Printf("http: panic serving 10.0.0.1:1234: boom")
	counted := func(reason string) float64 { return testutil.ToFloat64(m.met.handshakes[reason]) }
	if counted(ReasonEOF) != 1 || counted(ReasonUnsupportedVersion) != 1 || counted(ReasonOther) != 0 {
		t.Errorf("counts eof %v unsupported_version %v other %v", counted(ReasonEOF), counted(ReasonUnsupportedVersion), counted(ReasonOther))
	}
	out := buf.String()
	if !containsAll(out, `level=DEBUG msg="TLS handshake error" remote_addr=[::1]:51234 reason=eof error=EOF`,
		`level=WARN msg="HTTPS server error" error="http: panic serving 10.0.0.1:1234: boom"`) {
		t.Errorf("log:\n%s", out)
	}
}

func TestHandshakeErrorsCountedFromServer(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, logs, _ := newTestManager(t, Options{})
	m.Sync([]Host{writePair(t, t.TempDir(), "a", "a.test", root.leaf(t, leafOpts{names: []string{"a.test"}}))})
	addr := serveHTTPS(t, m) // ErrorLog = m.HandshakeErrorLog(nil)

	if _, err := peer(t, addr, "unknown.test"); err == nil {
		t.Fatal("handshake for an unknown name succeeded without a default")
	}
	old := &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11} //nolint:gosec // testing refusal
	if conn, err := tls.Dial("tcp", addr, old); err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	// A plain HTTP request to the HTTPS port.
	if conn, err := net.Dial("tcp", addr); err == nil {
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
		buf := make([]byte, 512)
		_, _ = conn.Read(buf)
		conn.Close()
	}
	eventually(t, 5*time.Second, func() error {
		for _, r := range []string{ReasonNoCertificate, ReasonUnsupportedVersion, ReasonNotTLS} {
			if got := testutil.ToFloat64(m.met.handshakes[r]); got != 1 {
				return fmt.Errorf("tls_handshake_errors_total{reason=%q} = %v, want 1", r, got)
			}
		}
		return nil
	})
	if !strings.Contains(logs.String(), `reason=no_certificate error="no certificate for server name \"unknown.test\""`) {
		t.Errorf("handshake error not logged:\n%s", logs.String())
	}
}
