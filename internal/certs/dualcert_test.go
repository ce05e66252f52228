package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// dualFixture is a manager serving dual.test with an ECDSA and an RSA
// chain over HTTPS.
type dualFixture struct {
	m      *Manager
	addr   string
	host   Host // the primary's files, with the other chain as Additional
	ec, rs pair
	root   *testCA
}

// newDualFixture serves dual.test from an ECDSA and an RSA chain; with
// rsaPrimary the RSA chain is cert_path and the ECDSA one the additional.
func newDualFixture(t *testing.T, rsaPrimary bool) *dualFixture {
	t.Helper()
	root := newRoot(t)
	f := &dualFixture{root: root,
		ec: root.leaf(t, leafOpts{names: []string{"dual.test"}}),
		rs: root.leaf(t, leafOpts{names: []string{"dual.test"}, rsa: true})}
	m, _, _ := newTestManager(t, Options{})
	dir := t.TempDir()
	ech := writePair(t, dir, "ec", "dual.test", f.ec)
	rsh := writePair(t, dir, "rsa", "dual.test", f.rs)
	f.host = ech
	f.host.Additional = []Pair{pairOf(rsh)}
	if rsaPrimary {
		f.host = rsh
		f.host.Additional = []Pair{pairOf(ech)}
	}
	m.Sync([]Host{f.host})
	if in, err := m.Info("dual.test"); err != nil || in.Status != StatusValid || len(in.Chains) != 2 {
		t.Fatalf("dual.test not loaded: %+v, %v", in, err)
	}
	f.m = m
	f.addr = serveHTTPS(t, m)
	return f
}

// keyTypeServed handshakes with client (ServerName set here) and returns
// the key type of the served leaf.
func keyTypeServed(t *testing.T, addr string, client *tls.Config) (string, *x509.Certificate) {
	t.Helper()
	client.ServerName = "dual.test"
	client.InsecureSkipVerify = true //nolint:gosec // the test inspects what is served
	conn, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	return KeyType(leaf.PublicKey), leaf
}

func TestDualChainSelection(t *testing.T) {
	t.Parallel()
	rsaSuites := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}
	ecSuites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name   string
		client func() *tls.Config
		want   string
	}{
		{name: "default Go client (TLS 1.3)", client: func() *tls.Config { return &tls.Config{} }, want: KeyECDSA},
		{name: "TLS 1.2 with every suite", client: func() *tls.Config { return &tls.Config{MaxVersion: tls.VersionTLS12} }, want: KeyECDSA},
		{name: "TLS 1.2 offering only ECDHE-RSA suites", client: func() *tls.Config {
			return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: rsaSuites}
		}, want: KeyRSA},
		{name: "TLS 1.2 offering only ECDHE-ECDSA suites", client: func() *tls.Config {
			return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: ecSuites}
		}, want: KeyECDSA},
	}
	for _, primary := range []string{KeyECDSA, KeyRSA} {
		f := newDualFixture(t, primary == KeyRSA)
		for _, tt := range tests {
			t.Run(primary+" primary/"+tt.name, func(t *testing.T) {
				got, _ := keyTypeServed(t, f.addr, tt.client())
				if got != tt.want {
					t.Errorf("served a %s chain, want %s", got, tt.want)
				}
			})
		}
	}
}

// TestDualChainSelectionOpenSSL: a TLS 1.3 client whose only signature
// algorithm is RSA-PSS cannot take the ECDSA chain and gets the RSA one;
// with ECDSA signature algorithms it gets ECDSA. openssl s_client can say
// so, Go's client cannot.
func TestDualChainSelectionOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newDualFixture(t, false)
	tests := []struct {
		name, sigalgs, want string
	}{
		{name: "tls1.3 rsa-pss only", sigalgs: "rsa_pss_rsae_sha256", want: KeyRSA},
		{name: "tls1.3 ecdsa p256", sigalgs: "ecdsa_secp256r1_sha256", want: KeyECDSA},
		{name: "tls1.3 both", sigalgs: "rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256", want: KeyECDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := opensslKeyType(t, f.addr, "-tls1_3", "-sigalgs", tt.sigalgs)
			if got != tt.want {
				t.Errorf("openssl s_client -sigalgs %s got a %s chain, want %s", tt.sigalgs, got, tt.want)
			}
		})
	}
}

// opensslKeyType connects with openssl s_client (and args) to addr for
// dual.test and returns the key type of the leaf it was served.
func opensslKeyType(t *testing.T, addr string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"s_client", "-connect", addr, "-servername", "dual.test"}, args...)
	cmd := exec.CommandContext(ctx, "openssl", argv...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	s := string(out)
	switch {
	case strings.Contains(s, "Server public key is 2048 bit") && strings.Contains(s, "Peer signature type: RSA-PSS"):
		return KeyRSA
	case strings.Contains(s, "Peer signature type: ECDSA"):
		return KeyECDSA
	}
	t.Fatalf("cannot tell the served key type from openssl's output:\n%s", s)
	return ""
}

// TestDualChainFallsBackToPrimary: a client that supports none of the
// chains gets the primary one (and the handshake fails in crypto/tls as
// it did with one chain).
func TestDualChainFallsBackToPrimary(t *testing.T) {
	t.Parallel()
	for _, rsaPrimary := range []bool{false, true} {
		f := newDualFixture(t, rsaPrimary)
		hello := &tls.ClientHelloInfo{ServerName: "dual.test", SupportedVersions: []uint16{tls.VersionTLS13},
			SignatureSchemes: []tls.SignatureScheme{tls.Ed25519}, SupportedCurves: []tls.CurveID{tls.X25519}}
		c, err := f.m.GetCertificate(hello)
		if err != nil {
			t.Fatal(err)
		}
		want := KeyECDSA
		if rsaPrimary {
			want = KeyRSA
		}
		if got := KeyType(c.Leaf.PublicKey); got != want {
			t.Errorf("rsaPrimary=%v: fallback served %s, want the primary (%s)", rsaPrimary, got, want)
		}
	}
}

// TestDualChainGetCertificateAllocations: choosing among two chains adds
// no allocation of ours to what crypto/tls's SupportsCertificate does.
func TestDualChainGetCertificateAllocations(t *testing.T) {
	f := newDualFixture(t, true)
	hellos := map[string]*tls.ClientHelloInfo{
		"tls1.3": {ServerName: "dual.test", SupportedVersions: []uint16{tls.VersionTLS13},
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
			SupportedCurves:  []tls.CurveID{tls.X25519, tls.CurveP256}},
		"tls1.2 rsa": {ServerName: "dual.test", SupportedVersions: []uint16{tls.VersionTLS12},
			CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			SignatureSchemes: []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256},
			SupportedCurves:  []tls.CurveID{tls.X25519}, SupportedPoints: []uint8{0}},
	}
	for name, hello := range hellos {
		var budget float64
		for _, c := range f.m.snap.Load().exact["dual.test"].certs {
			budget += testing.AllocsPerRun(100, func() { _ = hello.SupportsCertificate(c) })
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := f.m.GetCertificate(hello); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > budget {
			t.Errorf("%s: GetCertificate allocates %v times per call, SupportsCertificate itself %v", name, allocs, budget)
		}
	}
}

// TestDualChainReloadIsOneUnit: a reload that breaks one chain keeps
// both old ones served; a good one replaces both.
func TestDualChainReloadIsOneUnit(t *testing.T) {
	t.Parallel()
	f := newDualFixture(t, false)
	rsaPath := f.host.Additional[0]
	before, _ := f.m.Info("dual.test")

	// A broken RSA key: the reload fails, naming the file, and both old
	// chains stay.
	ec2 := f.root.leaf(t, leafOpts{names: []string{"dual.test"}})
	writeFile(t, f.host.CertPath, ec2.certPEM)
	writeFile(t, f.host.KeyPath, ec2.keyPEM)
	writeFile(t, rsaPath.KeyPath, []byte("not a key"))
	err := f.m.Reload("dual.test")
	if err == nil || !strings.Contains(err.Error(), rsaPath.KeyPath) {
		t.Fatalf("Reload with a broken RSA key: %v, want an error naming %s", err, rsaPath.KeyPath)
	}
	if _, leaf := keyTypeServed(t, f.addr, &tls.Config{}); leaf.SerialNumber.Cmp(f.ec.leaf.SerialNumber) != 0 {
		t.Errorf("the new ECDSA chain was served although its RSA sibling failed to load")
	}
	if in, _ := f.m.Info("dual.test"); in.LastError == "" || len(in.Chains) != 2 || in.Chains[0].NotAfter != before.Chains[0].NotAfter {
		t.Errorf("after a failed reload: %+v", in)
	}

	// Both good: both replaced.
	rs2 := f.root.leaf(t, leafOpts{names: []string{"dual.test"}, rsa: true})
	writeFile(t, rsaPath.CertPath, rs2.certPEM)
	writeFile(t, rsaPath.KeyPath, rs2.keyPEM)
	if err := f.m.Reload("dual.test"); err != nil {
		t.Fatal(err)
	}
	if _, leaf := keyTypeServed(t, f.addr, &tls.Config{}); leaf.SerialNumber.Cmp(ec2.leaf.SerialNumber) != 0 {
		t.Errorf("ECDSA chain not replaced")
	}
	rsaOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	if _, leaf := keyTypeServed(t, f.addr, rsaOnly); leaf.SerialNumber.Cmp(rs2.leaf.SerialNumber) != 0 {
		t.Errorf("RSA chain not replaced")
	}
	if in, _ := f.m.Info("dual.test"); in.LastError != "" {
		t.Errorf("LastError %q after a good reload", in.LastError)
	}
}

// TestDualChainWatchReloadsAChangedAdditional: the watcher follows the
// additional chain's files too, in a directory of their own.
func TestDualChainWatchReloadsAChangedAdditional(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, _, _ := newTestManager(t, Options{})
	ec := writePair(t, t.TempDir(), "ec", "dual.test", root.leaf(t, leafOpts{names: []string{"dual.test"}}))
	rsaPath := pairOf(writePair(t, t.TempDir(), "rsa", "dual.test", root.leaf(t, leafOpts{names: []string{"dual.test"}, rsa: true})))
	ec.Additional = []Pair{rsaPath}
	m.Sync([]Host{ec})
	f := &dualFixture{m: m, addr: serveHTTPS(t, m)}
	runManager(t, f.m)
	rs2 := root.leaf(t, leafOpts{names: []string{"dual.test"}, rsa: true})
	replaceByRename(t, rsaPath.KeyPath, rs2.keyPEM)
	replaceByRename(t, rsaPath.CertPath, rs2.certPEM)
	rsaOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	eventually(t, 10*time.Second, func() error {
		if _, leaf := keyTypeServed(t, f.addr, rsaOnly.Clone()); leaf.SerialNumber.Cmp(rs2.leaf.SerialNumber) != 0 {
			return errors.New("the new RSA chain is not served yet")
		}
		return nil
	})
}

func TestDualChainLoadErrors(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	ec := writePair(t, dir, "ec", "err.test", root.leaf(t, leafOpts{names: []string{"err.test"}}))
	ec2 := writePair(t, dir, "ec2", "err.test", root.leaf(t, leafOpts{names: []string{"err.test"}}))
	other := writePair(t, dir, "other", "err.test", root.leaf(t, leafOpts{names: []string{"other.test"}, rsa: true}))
	wildRSA := writePair(t, dir, "wild", "*.w.test", root.leaf(t, leafOpts{names: []string{"*.w.test"}, rsa: true}))
	wildEC := writePair(t, dir, "wildec", "*.w.test", root.leaf(t, leafOpts{names: []string{"*.w.test"}}))
	exactRSA := writePair(t, dir, "exact", "*.w.test", root.leaf(t, leafOpts{names: []string{"www.w.test"}, rsa: true}))
	missing := Host{CertPath: filepath.Join(dir, "no.crt"), KeyPath: ec.KeyPath}
	tests := []struct {
		name  string
		host  Host
		want  string // "" for no error
		chain int    // the ChainError's Chain
	}{
		{name: "two ECDSA chains", host: with(ec, ec2), want: "both have ecdsa keys", chain: 1},
		{name: "additional for another name", host: with(ec, other), want: other.CertPath + ": does not cover err.test", chain: 1},
		{name: "missing additional", host: with(ec, other, missing), want: "no.crt", chain: 2},
		{name: "missing primary", host: with(Host{Domain: "err.test", Source: SourceFile, CertPath: missing.CertPath, KeyPath: ec.KeyPath}, ec), want: "no.crt", chain: 0},
		{name: "wildcard pair", host: with(wildEC, wildRSA)},
		{name: "wildcard host with an exact additional", host: with(wildEC, exactRSA), want: "does not cover *.w.test", chain: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFiles(tt.host, time.Now())
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckFiles: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckFiles: %v, want an error containing %q", err, tt.want)
			}
			var ce *ChainError
			if tt.want != "" && (!errors.As(err, &ce) || ce.Chain != tt.chain) {
				t.Errorf("CheckFiles: %#v, want a ChainError for chain %d", err, tt.chain)
			}
			m, _, _ := newTestManager(t, Options{})
			m.Sync([]Host{tt.host})
			in, _ := m.Info(tt.host.Domain)
			if (in.Status == StatusValid) != (tt.want == "") {
				t.Errorf("Sync: status %q, last error %q", in.Status, in.LastError)
			}
		})
	}
}

// with returns h with the files of more as additional chains.
func with(h Host, more ...Host) Host {
	for _, o := range more {
		h.Additional = append(h.Additional, pairOf(o))
	}
	return h
}

// TestDualChainACME: a lets_encrypt host with both key types serves what
// the ACME side put for each, sums their statuses up, and drops a key
// type it no longer uses.
func TestDualChainACME(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, _, reg := newTestManager(t, Options{})
	addr := serveHTTPS(t, m)
	tlsOf := func(p pair) *tls.Certificate {
		c, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	ec := root.leaf(t, leafOpts{names: []string{"dual.test"}, notAfter: time.Now().Add(80 * 24 * time.Hour)})
	rs := root.leaf(t, leafOpts{names: []string{"dual.test"}, rsa: true, notAfter: time.Now().Add(50 * 24 * time.Hour)})
	both := Host{Domain: "dual.test", Source: SourceLetsEncrypt, KeyTypes: []string{KeyECDSA, KeyRSA}}
	m.Sync([]Host{both})

	// The RSA chain first: it is the only one, so everyone gets it.
	m.Put("dual.test", tlsOf(rs))
	m.SetStatus("dual.test", KeyRSA, StatusValid, nil)
	if in, _ := m.Info("dual.test"); in.Status != StatusPending {
		t.Errorf("status %q with the ECDSA chain still pending, want pending", in.Status)
	}
	if got, _ := keyTypeServed(t, addr, &tls.Config{}); got != KeyRSA {
		t.Errorf("served %s with the RSA chain alone", got)
	}
	m.Put("dual.test", tlsOf(ec))
	in, _ := m.Info("dual.test")
	if in.Status != StatusValid || len(in.Chains) != 2 || in.Chains[0].KeyType != KeyECDSA || in.Chains[1].Source != SourceACME {
		t.Errorf("after both were put: %+v", in)
	}
	if in.ExpiresAt == nil || !in.ExpiresAt.Equal(rs.leaf.NotAfter.UTC().Truncate(time.Second)) {
		t.Errorf("expires_at %v, want the RSA chain's (it expires first)", in.ExpiresAt)
	}
	if got, _ := keyTypeServed(t, addr, &tls.Config{}); got != KeyECDSA {
		t.Errorf("default client served %s, want ecdsa", got)
	}
	rsaOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	if got, _ := keyTypeServed(t, addr, rsaOnly); got != KeyRSA {
		t.Errorf("RSA-only client served %s, want rsa", got)
	}
	// The expiry metric keeps one series per domain: the earliest chain.
	want := fmt.Sprintf("\n# HELP certificate_expiration_timestamp_seconds Unix time at which the served certificate of the virtual host expires (the first to expire, when it serves several chains).\n"+
		"# TYPE certificate_expiration_timestamp_seconds gauge\ncertificate_expiration_timestamp_seconds{domain=\"dual.test\"} %d\n", rs.leaf.NotAfter.Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "certificate_expiration_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// One key type failing shows in the summary and in its chain.
	m.SetStatus("dual.test", KeyRSA, "renewing", errors.New("order failed"))
	in, _ = m.Info("dual.test")
	if in.Status != "renewing" || in.LastError != "order failed" || in.Chains[1].LastError != "order failed" || in.Chains[0].Status != StatusValid {
		t.Errorf("after an RSA failure: %+v", in)
	}

	// A put of a key type the host does not use is ignored.
	m.Sync([]Host{{Domain: "dual.test", Source: SourceLetsEncrypt}})
	in, _ = m.Info("dual.test")
	if len(in.Chains) != 1 || in.Chains[0].KeyType != KeyECDSA || in.Status != StatusValid {
		t.Errorf("after dropping rsa from the key types: %+v", in)
	}
	m.Put("dual.test", tlsOf(rs))
	if in, _ := m.Info("dual.test"); len(in.Chains) != 1 {
		t.Errorf("an RSA chain was installed for an ECDSA-only host: %+v", in)
	}
	if got, _ := keyTypeServed(t, addr, &tls.Config{}); got != KeyECDSA {
		t.Errorf("served %s", got)
	}
}

// BenchmarkGetCertificateDual is the handshake's certificate choice for a
// host with an ECDSA and an RSA chain, for a TLS 1.3 client (ECDSA, the
// first chain, fits), a TLS 1.2 RSA-only client (the second fits), and,
// for comparison, the same TLS 1.3 client on a host with one chain.
func BenchmarkGetCertificateDual(b *testing.B) {
	root := newRoot(b)
	dir := b.TempDir()
	m := New(Options{})
	ec := writePair(b, dir, "ec", "dual.test", root.leaf(b, leafOpts{names: []string{"dual.test"}}))
	rs := writePair(b, dir, "rsa", "dual.test", root.leaf(b, leafOpts{names: []string{"dual.test"}, rsa: true}))
	single := writePair(b, dir, "single", "single.test", root.leaf(b, leafOpts{names: []string{"single.test"}}))
	m.Sync([]Host{with(ec, rs), single})
	tls13 := func(name string) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{ServerName: name, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256, tls.PKCS1WithSHA256},
			SupportedCurves:  []tls.CurveID{tls.X25519, tls.CurveP256}, SupportedPoints: []uint8{0}}
	}
	rsa12 := &tls.ClientHelloInfo{ServerName: "dual.test", SupportedVersions: []uint16{tls.VersionTLS12},
		CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes: []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256},
		SupportedCurves:  []tls.CurveID{tls.X25519}, SupportedPoints: []uint8{0}}
	for _, bc := range []struct {
		name  string
		hello *tls.ClientHelloInfo
		want  string
	}{
		{"one chain", tls13("single.test"), KeyECDSA},
		{"two chains, TLS 1.3 gets ECDSA", tls13("dual.test"), KeyECDSA},
		{"two chains, TLS 1.2 RSA-only gets RSA", rsa12, KeyRSA},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := m.GetCertificate(bc.hello)
				if err != nil || KeyType(c.Leaf.PublicKey) != bc.want {
					b.Fatalf("got %v, %v", c, err)
				}
			}
		})
	}
}
