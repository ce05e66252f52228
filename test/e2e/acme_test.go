package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// The test in this file checks issue 5 on the real binary against Pebble,
// Let's Encrypt's test CA, with pebble-challtestsrv as its DNS server
// (every name resolves to 127.0.0.1). Pebble validates HTTP-01 on the
// proxy's own HTTP listener and TLS-ALPN-01 on its HTTPS listener, so
// both are bound to ports picked before Pebble starts. CI installs the
// binaries (.ci/run):
//
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3
//
// Without them the test skips, unless CI is set, when it fails.

// acmeIssueTimeout bounds the wait for a certificate from Pebble.
const acmeIssueTimeout = 30 * time.Second

// pebbleProc is a running Pebble with its DNS server.
type pebbleProc struct {
	*process
	dns          *process
	DirectoryURL string
	CARoot       string // PEM root of Pebble's own HTTPS certificate
	mgmtURL      string
	client       *http.Client // trusts CARoot
}

// startPebble starts pebble-challtestsrv and Pebble, which validates
// challenges on 127.0.0.1:httpPort (HTTP-01) and :tlsPort (TLS-ALPN-01).
func startPebble(t *testing.T, httpPort, tlsPort int) *pebbleProc {
	t.Helper()
	const install = "go install github.com/letsencrypt/pebble/v2/cmd/...@v2.10.3"
	pebbleBin := testutil.FindTool(t, "pebble", install)
	dnsBin := testutil.FindTool(t, "pebble-challtestsrv", install)

	dir := t.TempDir()
	ca := newTestCA(t, dir)
	_, certFile, keyFile := ca.issueFiles(t, "pebble", []string{"localhost"}, leafOpts{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pb := &pebbleProc{CARoot: ca.RootFile}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: ca.Roots}}
	t.Cleanup(tr.CloseIdleConnections)
	pb.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}

	// Ports are picked free and released, so another process may take one
	// first: a start that fails is tried again on new ports.
	var lastErr error
	for range 3 {
		dnsPort, dnsMgmt := testutil.FreeDNSPort(t), testutil.FreePort(t)
		pb.dns = startProcess(t, dnsBin,
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort),
			"-management", "127.0.0.1:"+strconv.Itoa(dnsMgmt),
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
		if lastErr = waitUp(pb.dns, func(ctx context.Context) error { return testutil.ProbeDNS(ctx, dnsPort) }); lastErr != nil {
			pb.dns.kill()
			continue
		}
		acmePort, mgmtPort := testutil.FreePort(t), testutil.FreePort(t)
		cfg := filepath.Join(dir, "pebble-config.json")
		data, _ := json.MarshalIndent(map[string]any{"pebble": map[string]any{
			"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
			"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       httpPort,
			"tlsPort":                        tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"retryAfter":                     map[string]int{"authz": 0, "order": 0},
			"keyAlgorithm":                   "ecdsa",
			"profiles": map[string]any{"default": map[string]any{
				"description":    "fronttier e2e",
				"validityPeriod": 90 * 24 * 3600,
			}},
		}}, "", "  ")
		writeFile(t, cfg, string(data))
		pb.DirectoryURL = "https://127.0.0.1:" + strconv.Itoa(acmePort) + "/dir"
		pb.mgmtURL = "https://127.0.0.1:" + strconv.Itoa(mgmtPort)
		pb.process = startProcessEnv(t,
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
			pebbleBin, "-config", cfg, "-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort), "-strict=false")
		if lastErr = waitUp(pb.process, func(ctx context.Context) error { return pb.get(ctx, pb.DirectoryURL, nil) }); lastErr != nil {
			pb.kill()
			pb.dns.kill()
			continue
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("pebble output:\n%s", tail(pb.out.String(), 60))
			}
		})
		return pb
	}
	t.Fatalf("pebble did not start: %v", lastErr)
	return nil
}

// waitUp polls probe until it succeeds, the process exits or startTimeout
// passes.
func waitUp(p *process, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.cmd.Path, p.out.String())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.cmd.Path, err)
		case <-tick.C:
		}
	}
}

// get fetches url into out (when not nil) and fails on a non-2xx status.
func (pb *pebbleProc) get(ctx context.Context, url string, out io.Writer) error {
	return testutil.Fetch(ctx, pb.client, url, out)
}

// issuingRoots returns the root Pebble issues under (new at every start),
// from its management API.
func (pb *pebbleProc) issuingRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	var buf bytes.Buffer
	if err := pb.get(t.Context(), pb.mgmtURL+"/roots/0", &buf); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(buf.Bytes()) {
		t.Fatalf("no certificate in Pebble's /roots/0: %q", buf.String())
	}
	return pool
}

// pebbleLeaf handshakes with SNI name and returns the leaf if it verifies
// against roots (Pebble's), or an error.
func pebbleLeaf(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	chain, err := handshake(addr, name)
	if err != nil {
		return nil, err
	}
	if err := verifyChain(chain, name, roots); err != nil {
		return nil, err
	}
	return chain[0], nil
}

// acmeEnv is a proxy with one lets_encrypt domain, le1.example.test, and
// the Pebble it gets its certificates from.
type acmeEnv struct {
	pb    *pebbleProc
	p     *proxyProc
	roots *x509.CertPool // Pebble's issuing root
}

// startACME picks the proxy's ports, starts Pebble validating on them (or,
// with noTLSALPN, on the HTTP port and a closed TLS port, so that only
// HTTP-01 can succeed) and starts the proxy.
func startACME(t *testing.T, noTLSALPN bool) *acmeEnv {
	t.Helper()
	return startACMEWith(t, noTLSALPN, nil)
}

// startACMEWith is startACME with edit (when not nil) applied to the
// proxy's configuration before it starts.
func startACMEWith(t *testing.T, noTLSALPN bool, edit func(*tlsConf)) *acmeEnv {
	t.Helper()
	httpAddr, httpsAddr := freeAddr(t), freeAddr(t)
	_, hp, _ := net.SplitHostPort(httpAddr)
	_, sp, _ := net.SplitHostPort(httpsAddr)
	httpPort, _ := strconv.Atoi(hp)
	tlsPort, _ := strconv.Atoi(sp)
	if noTLSALPN {
		tlsPort = testutil.FreePort(t)
	}
	env := &acmeEnv{pb: startPebble(t, httpPort, tlsPort)}
	env.roots = env.pb.issuingRoots(t)
	le := startBackend(t, "le")
	c := tlsConf{
		HTTPAddr:     httpAddr,
		HTTPSAddr:    httpsAddr,
		DirectoryURL: env.pb.DirectoryURL,
		CARoot:       env.pb.CARoot,
		CacheDir:     filepath.Join(t.TempDir(), "acme-cache"),
		Hosts:        []tlsHost{{Domain: "le1.example.test", Tag: "le", LE: true}},
		Backends:     []backendConf{be("le", le, "le")},
	}
	if edit != nil {
		edit(&c)
	}
	env.p = startTLSProxy(t, c)
	if env.p.HTTP != httpAddr || env.p.HTTPS != httpsAddr {
		t.Fatalf("listeners on %s and %s, want %s and %s", env.p.HTTP, env.p.HTTPS, httpAddr, httpsAddr)
	}
	return env
}

// waitIssued waits until name is served a certificate that verifies
// against Pebble's root.
func (env *acmeEnv) waitIssued(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	start := time.Now()
	var leaf *x509.Certificate
	var err error
	eventually(t, acmeIssueTimeout, func() bool {
		leaf, err = pebbleLeaf(env.p.HTTPS, name, env.roots)
		return err == nil
	}, name, " is served a certificate issued by Pebble (last: ", err, ")")
	t.Logf("%s: Pebble certificate served after %v", name, time.Since(start).Round(time.Millisecond))
	return leaf
}

// TestACMEHTTP01: with TLS-ALPN-01 unreachable, the certificate comes
// through HTTP-01 answered on the proxy's own HTTP listener.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	env := startACME(t, true)
	first := env.waitIssued(t, "le1.example.test")
	requireACMEValid(t, env.p, "le1.example.test")

	// A forced renewal: 202 at once, and a new certificate served.
	var in struct{ Status string }
	env.p.mustAPI(t, http.StatusAccepted, http.MethodPost, "/certificates/le1.example.test/renew", nil, &in)
	if in.Status != "renewing" {
		t.Errorf("renew answered status %q, want renewing", in.Status)
	}
	eventually(t, waitTimeout, func() bool {
		got, err := pebbleLeaf(env.p.HTTPS, "le1.example.test", env.roots)
		return err == nil && !got.Equal(first)
	}, "a new certificate served after POST .../renew")
	requireACMEValid(t, env.p, "le1.example.test")
	solved := false
	for _, l := range env.p.out.Lines() {
		if m, ok := jsonLine(l); ok && m["msg"] == "trying to solve challenge" && m["challenge_type"] == "http-01" {
			solved = true
		}
	}
	if !solved {
		t.Errorf("no HTTP-01 challenge was tried")
	}
}

// TestACMEPebble: a lets_encrypt domain in the config file is served a
// Pebble certificate by SNI soon after start; one added over the API is
// proxied over HTTP until its certificate arrives, with no restart; with
// Pebble stopped, a restarted proxy serves both from its cache at once; the
// certificate API and the logs report it all.
func TestACMEPebble(t *testing.T) {
	t.Parallel()
	env := startACME(t, false)
	pb, p, roots := env.pb, env.p, env.roots

	// 1. The domain in the file gets a Pebble certificate.
	le1 := env.waitIssued(t, "le1.example.test")
	requireACMEValid(t, p, "le1.example.test")
	hc, _ := p.httpsClient(t, roots, false)
	if _, e := getEchoTLS(t, hc, p.httpsURL("le1.example.test", "/x")); e.BackendID != "le" || e.Headers["X-Forwarded-Proto"] != "https" {
		t.Errorf("HTTPS le1.example.test: %+v", e)
	}
	if resp, _ := p.get(t, "le1.example.test", "/x"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("HTTP le1.example.test: %d, want 301 now that it has a certificate", resp.StatusCode)
	}

	// 2. A domain added over the API. Pebble is paused (SIGSTOP) so that
	// the state before issuance can be observed without a race: until
	// the certificate exists the domain is proxied over HTTP.
	pb.signal(t, syscall.SIGSTOP)
	paused := true
	resume := func() {
		if paused {
			pb.signal(t, syscall.SIGCONT)
			paused = false
		}
	}
	t.Cleanup(resume)
	p.mustAPI(t, http.StatusCreated, http.MethodPost, "/domains", map[string]any{
		"domain": "le2.example.test", "enabled_backends_tag": "le",
		"certificate_source": map[string]string{"type": "lets_encrypt"},
	}, nil)
	if e := p.getEcho(t, "le2.example.test", "/before"); e.BackendID != "le" || e.Headers["X-Forwarded-Proto"] != "http" {
		t.Errorf("HTTP le2.example.test before its certificate: %+v, want proxied over http", e)
	}
	if in := p.certificate(t, "le2.example.test"); in.Source != "lets_encrypt" || in.Status != "pending" || in.ExpiresAt != nil {
		t.Errorf("certificate API for le2.example.test before issuance: %+v, want lets_encrypt, pending, no certificate", in)
	}
	if _, err := handshake(p.HTTPS, "le2.example.test"); err == nil {
		t.Errorf("le2.example.test has a certificate before Pebble could issue one")
	}
	resume()
	le2 := env.waitIssued(t, "le2.example.test")
	requireACMEValid(t, p, "le2.example.test")
	if resp, _ := p.get(t, "le2.example.test", "/after"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("HTTP le2.example.test after issuance: %d, want 301", resp.StatusCode)
	}

	// 4. ACME activity is logged.
	var acmeLines []string
	for _, l := range p.out.Lines() {
		if strings.Contains(strings.ToLower(l), "acme") {
			acmeLines = append(acmeLines, l)
		}
	}
	if len(acmeLines) < 3 {
		t.Errorf("only %d log lines mention acme:\n%s", len(acmeLines), strings.Join(acmeLines, "\n"))
	}

	// 3. Pebble stopped, the proxy restarted on the same file: both domains
	// are served from the cache at the first handshake.
	pb.kill()
	pb.dns.kill()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Fatalf("fronttier exited %d after SIGTERM", code)
	}
	p2 := p.restart(t)
	for name, want := range map[string]*x509.Certificate{"le1.example.test": le1, "le2.example.test": le2} {
		got, err := pebbleLeaf(p2.HTTPS, name, roots)
		if err != nil {
			t.Errorf("after the restart, the first handshake for %s: %v", name, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("after the restart %s is served serial %s, want the cached %s", name, got.SerialNumber.Text(16), want.SerialNumber.Text(16))
		}
		requireACMEValid(t, p2, name)
	}
	if !slices.ContainsFunc(p2.out.Lines(), msgIs("Certificate loaded from cache")) {
		t.Errorf("the restarted proxy did not log \"Certificate loaded from cache\"")
	}
}

// requireACMEValid requires the certificate API to show domain from
// lets_encrypt, valid, with a certificate for it.
func requireACMEValid(t *testing.T, p *proxyProc, domain string) {
	t.Helper()
	in := p.certificate(t, domain)
	if in.Source != "lets_encrypt" || in.Status != "valid" || in.LastError != "" || in.ExpiresAt == nil ||
		in.DaysUntilExpiration == nil || *in.DaysUntilExpiration < 80 || len(in.Names) != 1 || in.Names[0] != domain {
		t.Errorf("certificate API for %s: %+v, want lets_encrypt, valid, 90-day certificate", domain, in)
	}
}
