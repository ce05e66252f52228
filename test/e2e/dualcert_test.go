package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 16: a domain carries an ECDSA and an RSA certificate together
// (file sources and ACME); every client that supports ECDSA is served
// ECDSA, the others RSA.

// rsaOnlyTLS12 is a client that can take RSA certificates only: TLS 1.2
// offering ECDHE-RSA suites alone.
func rsaOnlyTLS12() *tls.Config {
	return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}}
}

// servedLeaf handshakes with addr for name with client (its ServerName
// and roots set here) and returns the verified leaf.
func servedLeaf(t *testing.T, addr, name string, roots *x509.CertPool, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	client.ServerName, client.RootCAs = name, roots
	chain, err := handshakeWith(addr, client)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// keyTypeOf names a leaf's key type as the API does.
func keyTypeOf(c *x509.Certificate) string {
	switch c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa"
	case *rsa.PublicKey:
		return "rsa"
	}
	return "other"
}

// chainEntry is one element of a certificate entry's chains array.
type chainEntry struct {
	KeyType  string    `json:"key_type"`
	Source   string    `json:"source"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	Issuer   string    `json:"issuer"`
	Status   string    `json:"status"`
}

// chainsOf returns the chains array of domain's certificate entry.
func chainsOf(t *testing.T, p *proxyProc, domain string) []chainEntry {
	t.Helper()
	_, raw := p.certificates(t)
	var chains []chainEntry
	if err := json.Unmarshal(raw[domain]["chains"], &chains); err != nil {
		t.Fatalf("chains of %s: %v (%s)", domain, err, raw[domain]["chains"])
	}
	return chains
}

// opensslSigalgsKeyType runs openssl s_client, TLS 1.3 with only sigalgs
// offered, against addr for name and returns the key type it was served.
func opensslSigalgsKeyType(t *testing.T, addr, name, caFile, sigalgs string) string {
	t.Helper()
	bin := opensslBin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	args := []string{"s_client", "-connect", addr, "-servername", name, "-tls1_3", "-sigalgs", sigalgs,
		"-CAfile", caFile, "-verify_return_error"}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	switch s := string(out); {
	case strings.Contains(s, "Peer signature type: RSA-PSS"):
		return "rsa"
	case strings.Contains(s, "Peer signature type: ECDSA"):
		return "ecdsa"
	default:
		t.Fatalf("openssl %s: no peer signature type in\n%s", strings.Join(args, " "), s)
		return ""
	}
}

// TestDualCertFile: a file source with an ECDSA primary and an RSA
// additional chain, through the real HTTPS listener: a default client
// (HTTP/2 and HTTP/1.1) gets ECDSA, an RSA-only TLS 1.2 client and a TLS
// 1.3 client offering only RSA-PSS get RSA, all reach the backend; the
// API lists both chains with the earlier expiry on top and the expiry
// metric keeps one series per domain; a reload that breaks one chain keeps
// both old ones, one that renews both serves both new ones.
func TestDualCertFile(t *testing.T) {
	t.Parallel()
	const domain = "dual.example.test"
	ca := newTestCA(t, t.TempDir())
	ec, ecCert, ecKey := ca.issueFiles(t, "dual-ecdsa", []string{domain}, leafOpts{NotAfter: time.Now().Add(60 * 24 * time.Hour)})
	rs, rsCert, rsKey := ca.issueFiles(t, "dual-rsa", []string{domain}, leafOpts{RSA: true, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	b := startBackend(t, "dual")
	p := startTLSProxy(t, tlsConf{
		Hosts:    []tlsHost{{Domain: domain, Tag: "dual", Cert: ecCert, Key: ecKey, Additional: [][2]string{{rsCert, rsKey}}}},
		Backends: []backendConf{be("dual", b, "dual")},
	})

	// Which chain each client gets, and a request through each.
	for _, tt := range []struct {
		name   string
		client func() *tls.Config
		h1Only bool
		want   *x509.Certificate
	}{
		{name: "default client, HTTP/2", client: func() *tls.Config { return &tls.Config{} }, want: ec.Cert},
		{name: "default client, HTTP/1.1", client: func() *tls.Config { return &tls.Config{} }, h1Only: true, want: ec.Cert},
		{name: "TLS 1.2 with every suite", client: func() *tls.Config { return &tls.Config{MaxVersion: tls.VersionTLS12} }, want: ec.Cert},
		{name: "TLS 1.2 ECDHE-RSA suites only", client: rsaOnlyTLS12, want: rs.Cert},
		{name: "TLS 1.2 ECDHE-RSA suites only, HTTP/1.1", client: rsaOnlyTLS12, h1Only: true, want: rs.Cert},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, tr := p.httpsClient(t, ca.Roots, tt.h1Only)
			cfg := tt.client()
			cfg.RootCAs = ca.Roots
			tr.TLSClientConfig = cfg
			resp, e := getEchoTLS(t, c, p.httpsURL(domain, "/dual"))
			if e.BackendID != "dual" {
				t.Errorf("request reached %q, want the dual backend", e.BackendID)
			}
			if got := resp.TLS.PeerCertificates[0]; !got.Equal(tt.want) {
				t.Errorf("served a %s leaf (serial %s), want the %s one", keyTypeOf(got), got.SerialNumber.Text(16), keyTypeOf(tt.want))
			}
		})
	}
	for sigalgs, want := range map[string]string{
		"rsa_pss_rsae_sha256":                        "rsa",
		"ecdsa_secp256r1_sha256":                     "ecdsa",
		"rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256": "ecdsa",
	} {
		if got := opensslSigalgsKeyType(t, p.HTTPS, domain, ca.RootFile, sigalgs); got != want {
			t.Errorf("openssl s_client -tls1_3 -sigalgs %s was served %s, want %s", sigalgs, got, want)
		}
	}

	// The API: both chains, ECDSA first; the top-level fields describe
	// the RSA one, which expires first.
	in := p.certificate(t, domain)
	if in.Status != "valid" || in.ExpiresAt == nil || !in.ExpiresAt.Equal(rs.Cert.NotAfter.UTC().Truncate(time.Second)) ||
		in.DaysUntilExpiration == nil || *in.DaysUntilExpiration != 29 {
		t.Errorf("certificate entry %+v, want valid with the RSA chain's expiry (29 days)", in)
	}
	chains := chainsOf(t, p, domain)
	if len(chains) != 2 || chains[0].KeyType != "ecdsa" || chains[0].Source != ecCert || chains[0].DaysLeft != 59 ||
		chains[1].KeyType != "rsa" || chains[1].Source != rsCert || chains[1].Issuer != "fronttier e2e test intermediate" {
		t.Errorf("chains %+v", chains)
	}
	// One expiry series for the domain: the first chain to expire.
	if got := metricValue(t, p, "certificate_expiration_timestamp_seconds", map[string]string{"domain": domain}); got != float64(rs.Cert.NotAfter.Unix()) {
		t.Errorf("certificate_expiration_timestamp_seconds = %v, want the RSA chain's %d", got, rs.Cert.NotAfter.Unix())
	}

	// A broken RSA key beside a good new ECDSA chain: the reload fails,
	// naming the file, and both old chains stay served.
	ec2 := ca.issue(t, []string{domain}, leafOpts{})
	ec2.write(t, ecCert, ecKey)
	writeFile(t, rsKey, "not a key\n")
	status, body, err := p.tryAPI(http.MethodPost, "/certificates/"+domain+"/reload", nil)
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(body), rsKey) {
		t.Errorf("reload with a broken RSA key: %d %s %v, want 400 naming %s", status, body, err, rsKey)
	}
	if got, err := servedLeaf(t, p.HTTPS, domain, ca.Roots, &tls.Config{}); err != nil || !got.Equal(ec.Cert) {
		t.Errorf("after the failed reload a default client did not get the old ECDSA chain (%v)", err)
	}
	if got, err := servedLeaf(t, p.HTTPS, domain, ca.Roots, rsaOnlyTLS12()); err != nil || !got.Equal(rs.Cert) {
		t.Errorf("after the failed reload an RSA-only client got %v, want the old RSA chain", err)
	}

	// Both chains renewed by rename, as certbot does: the watcher swaps
	// both in.
	rs2 := ca.issue(t, []string{domain}, leafOpts{RSA: true})
	rs2.rename(t, rsCert, rsKey)
	eventually(t, waitTimeout, func() bool {
		e, err1 := servedLeaf(t, p.HTTPS, domain, ca.Roots, &tls.Config{})
		r, err2 := servedLeaf(t, p.HTTPS, domain, ca.Roots, rsaOnlyTLS12())
		return err1 == nil && err2 == nil && e.Equal(ec2.Cert) && r.Equal(rs2.Cert)
	}, "both renewed chains served")
	if in := p.certificate(t, domain); in.LastError != "" || in.Status != "valid" {
		t.Errorf("after the renewal: %+v", in)
	}
}

// TestDualCertConfigRejected: two chains of one key type, or an additional
// chain for another name, fail `fronttier validate` and an API change,
// naming the file.
func TestDualCertConfigRejected(t *testing.T) {
	t.Parallel()
	const domain = "dual.example.test"
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	_, ecCert, ecKey := ca.issueFiles(t, "a", []string{domain}, leafOpts{})
	_, ec2Cert, ec2Key := ca.issueFiles(t, "b", []string{domain}, leafOpts{})
	_, otherCert, otherKey := ca.issueFiles(t, "other", []string{"other.example.test"}, leafOpts{RSA: true})

	path := writeTLSConfig(t, tlsConf{Hosts: []tlsHost{{Domain: domain, Tag: "a", Cert: ecCert, Key: ecKey,
		Additional: [][2]string{{ec2Cert, ec2Key}}}}})
	if code, stdout, stderr := validateFile(t, path); code == 0 || !strings.Contains(stdout+stderr, "virtual_hosts[0].certificate_source.additional[0]: "+domain) ||
		!strings.Contains(stdout+stderr, "both have ecdsa keys") {
		t.Errorf("validate of two ECDSA chains: exit %d\n%s%s", code, stdout, stderr)
	}

	p := startTLSProxy(t, tlsConf{})
	status, body, err := p.tryAPI(http.MethodPost, "/domains", map[string]any{
		"domain": domain, "enabled_backends_tag": "a",
		"certificate_source": map[string]any{"type": "file", "cert_path": ecCert, "key_path": ecKey,
			"additional": []map[string]string{{"cert_path": otherCert, "key_path": otherKey}}},
	})
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(body), "certificate_source.additional[0]") ||
		!strings.Contains(string(body), otherCert) || !strings.Contains(string(body), "does not cover") {
		t.Errorf("POST /domains with an additional chain for another name: %d %s %v", status, body, err)
	}
}

// TestDualCertACME: with [lets_encrypt] key_types = ["ecdsa", "rsa"],
// Pebble issues both certificates; a default client gets ECDSA and an
// RSA-only one RSA, both verifying; the API lists both from "acme"; with
// Pebble gone, a restarted proxy serves both from its cache, where the
// ECDSA one keeps its old place and the RSA one sits beside it.
func TestDualCertACME(t *testing.T) {
	t.Parallel()
	const domain = "le1.example.test"
	var cacheDir string
	env := startACMEWith(t, false, func(c *tlsConf) {
		c.KeyTypes = []string{"ecdsa", "rsa"}
		cacheDir = c.CacheDir
	})
	p, roots := env.p, env.roots
	var ec, rs *x509.Certificate
	eventually(t, acmeIssueTimeout, func() bool {
		var err1, err2 error
		ec, err1 = servedLeaf(t, p.HTTPS, domain, roots, &tls.Config{})
		rs, err2 = servedLeaf(t, p.HTTPS, domain, roots, rsaOnlyTLS12())
		return err1 == nil && err2 == nil && keyTypeOf(ec) == "ecdsa" && keyTypeOf(rs) == "rsa"
	}, "both Pebble certificates served")
	eventually(t, waitTimeout, func() bool { return p.certificate(t, domain).Status == "valid" }, "status valid")
	chains := chainsOf(t, p, domain)
	if len(chains) != 2 || chains[0].KeyType != "ecdsa" || chains[1].KeyType != "rsa" ||
		chains[0].Source != "acme" || chains[1].Status != "valid" {
		t.Errorf("chains %+v", chains)
	}
	hc, tr := p.httpsClient(t, roots, false)
	tr.TLSClientConfig = rsaOnlyTLS12()
	tr.TLSClientConfig.RootCAs = roots
	if resp, e := getEchoTLS(t, hc, p.httpsURL(domain, "/rsa")); e.BackendID != "le" || !resp.TLS.PeerCertificates[0].Equal(rs) {
		t.Errorf("RSA-only client through the proxy: %+v", e)
	}

	// The cache: the ECDSA files where they always were, RSA beside them.
	var files []string
	_ = filepath.WalkDir(filepath.Join(cacheDir, "certificates"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.Base(filepath.Dir(path))+"/"+d.Name())
		}
		return nil
	})
	for _, want := range []string{domain + "/" + domain + ".crt", domain + "/" + domain + "+rsa.crt", domain + "/" + domain + "+rsa.key"} {
		if !strings.Contains(strings.Join(files, " "), want) {
			t.Errorf("cache has %v, want %s", files, want)
		}
	}

	// Pebble gone, the proxy restarted: both served from the cache.
	env.pb.kill()
	env.pb.dns.kill()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Fatalf("fronttier exited %d after SIGTERM", code)
	}
	p2 := p.restart(t)
	if got, err := servedLeaf(t, p2.HTTPS, domain, roots, &tls.Config{}); err != nil || !got.Equal(ec) {
		t.Errorf("after the restart a default client got %v", err)
	}
	if got, err := servedLeaf(t, p2.HTTPS, domain, roots, rsaOnlyTLS12()); err != nil || !got.Equal(rs) {
		t.Errorf("after the restart an RSA-only client got %v", err)
	}
	if in := p2.certificate(t, domain); in.Status != "valid" {
		t.Errorf("after the restart: %+v", in)
	}
}
