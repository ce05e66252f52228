package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// This file holds what the TLS and ACME tests share: a test certificate
// authority (root and intermediate, made with crypto/x509), configuration
// files with HTTPS listeners and certificate sources, HTTPS clients that
// dial the proxy whatever the URL's host, raw handshakes and openssl
// s_client runs.

// ---------------------------------------------------------------------------
// Test certificate authority

// testCA is a root and an intermediate that signs leaf certificates. The
// root is in RootFile (PEM) and Roots.
type testCA struct {
	dir       string
	RootFile  string
	Roots     *x509.CertPool
	root      *x509.Certificate
	inter     *x509.Certificate
	interKey  crypto.Signer
	interPEM  []byte
	interName string
}

// newTestCA makes a root and an intermediate under dir and writes the
// root to dir/root.pem.
func newTestCA(t testing.TB, dir string) *testCA {
	t.Helper()
	now := time.Now()
	rootKey := testutil.ECKey(t)
	rootTmpl := &x509.Certificate{
		SerialNumber:          testutil.Serial(t),
		Subject:               pkix.Name{CommonName: "fronttier e2e test root", Organization: []string{"fronttier tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(400 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)

	interKey := testutil.ECKey(t)
	interTmpl := &x509.Certificate{
		SerialNumber:          testutil.Serial(t),
		Subject:               pkix.Name{CommonName: "fronttier e2e test intermediate", Organization: []string{"fronttier tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(399 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)

	ca := &testCA{
		dir:       dir,
		RootFile:  filepath.Join(dir, "root.pem"),
		Roots:     x509.NewCertPool(),
		root:      root,
		inter:     inter,
		interKey:  interKey,
		interPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER}),
		interName: inter.Subject.CommonName,
	}
	ca.Roots.AddCert(root)
	writeFile(t, ca.RootFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})))
	return ca
}

// leafOpts varies a leaf certificate.
type leafOpts struct {
	RSA       bool      // RSA 2048 key instead of ECDSA P-256
	NotBefore time.Time // zero: an hour ago
	NotAfter  time.Time // zero: 5 days from now
	IPs       []net.IP  // IP address SANs
	// OCSP and CRL, if set, are the leaf's OCSP responder and CRL
	// distribution point URLs (never contacted; testssl.sh wants them).
	OCSP, CRL string
}

// leaf is a certificate and its key, PEM encoded; Chain is the leaf
// followed by the intermediate (what a server must send).
type leaf struct {
	Cert   *x509.Certificate
	Chain  []byte
	KeyPEM []byte
}

// Serial is the leaf's serial number in hexadecimal.
func (l leaf) Serial() string { return l.Cert.SerialNumber.Text(16) }

// issue signs a leaf for names (the first is also the subject CN).
func (ca *testCA) issue(t testing.TB, names []string, o leafOpts) leaf {
	t.Helper()
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(5 * 24 * time.Hour)
	}
	var key crypto.Signer
	ku := x509.KeyUsageDigitalSignature
	if o.RSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
		ku |= x509.KeyUsageKeyEncipherment
	} else {
		key = testutil.ECKey(t)
	}
	tmpl := &x509.Certificate{
		SerialNumber: testutil.Serial(t),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     ku,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.OCSP != "" {
		tmpl.OCSPServer = []string{o.OCSP}
	}
	if o.CRL != "" {
		tmpl.CRLDistributionPoints = []string{o.CRL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, key.Public(), ca.interKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.interPEM...)
	return leaf{Cert: cert, Chain: chain, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
}

// issueFiles issues a leaf for names and writes it to dir/<base>.crt and
// dir/<base>.key.
func (ca *testCA) issueFiles(t testing.TB, base string, names []string, o leafOpts) (l leaf, certPath, keyPath string) {
	t.Helper()
	l = ca.issue(t, names, o)
	certPath = filepath.Join(ca.dir, base+".crt")
	keyPath = filepath.Join(ca.dir, base+".key")
	l.write(t, certPath, keyPath)
	return l, certPath, keyPath
}

// write writes the chain and the key in place (truncating the files).
func (l leaf) write(t testing.TB, certPath, keyPath string) {
	t.Helper()
	writeFile(t, certPath, string(l.Chain))
	writeFile(t, keyPath, string(l.KeyPEM))
}

// rename writes the chain and the key to temporary files in the same
// directories and renames them over certPath and keyPath, as certbot,
// editors and Kubernetes do.
func (l leaf) rename(t testing.TB, certPath, keyPath string) {
	t.Helper()
	for path, data := range map[string][]byte{certPath: l.Chain, keyPath: l.KeyPEM} {
		tmp := path + ".tmp"
		writeFile(t, tmp, string(data))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------------------
// Configuration files with HTTPS

// tlsConf is a configuration with an HTTPS listener: hosts with certificate
// sources, JSON logs, fast health checks.
type tlsConf struct {
	HTTPSAddr   string // listen_addr; "" means 127.0.0.1:0
	HTTPAddr    string // listen_addr_http; "" means 127.0.0.1:0
	DefaultCert string // proxy.default_certificate
	Hosts       []tlsHost
	Backends    []backendConf
	CacheDir    string // lets_encrypt.cache_dir; "" means beside the file
	// ACME settings of [lets_encrypt], for the Pebble tests.
	DirectoryURL, CARoot string
	// KeyTypes is [lets_encrypt] key_types; nil leaves it out.
	KeyTypes []string
	// SendTimeoutSecs is proxy.send_timeout_secs; 0 leaves the default.
	SendTimeoutSecs int
}

// tlsHost is a virtual host; Cert and Key make a file source, LE a
// lets_encrypt one, neither no certificate.
type tlsHost struct {
	Domain, Tag string
	Cert, Key   string
	LE          bool
	NoRedirect  bool // http_to_https = false
	// Additional are further chains of a file source, {cert, key} each.
	Additional [][2]string
}

func (c tlsConf) String() string {
	var s strings.Builder
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	fmt.Fprintf(&s, `[proxy]
listen_addr = %q
listen_addr_http = %q
management_api_addr = "127.0.0.1:0"
shutdown_timeout_secs = 10
`, or(c.HTTPSAddr, "127.0.0.1:0"), or(c.HTTPAddr, "127.0.0.1:0"))
	if c.DefaultCert != "" {
		fmt.Fprintf(&s, "default_certificate = %q\n", c.DefaultCert)
	}
	if c.SendTimeoutSecs != 0 {
		fmt.Fprintf(&s, "send_timeout_secs = %d\n", c.SendTimeoutSecs)
	}
	fmt.Fprintf(&s, "\n[lets_encrypt]\nemail = \"e2e@example.test\"\ncache_dir = %q\n", c.CacheDir)
	if c.DirectoryURL != "" {
		fmt.Fprintf(&s, "directory_url = %q\nca_root = %q\n", c.DirectoryURL, c.CARoot)
	}
	if c.KeyTypes != nil {
		fmt.Fprintf(&s, "key_types = [%s]\n", quoteAll(c.KeyTypes))
	}
	s.WriteString(`
[logging]
level = "info"
format = "json"
output = "console"

[health_check]
interval_secs = 1
timeout_secs = 1
`)
	for _, h := range c.Hosts {
		fmt.Fprintf(&s, "\n[[virtual_hosts]]\ndomain = %q\nenabled_backends_tag = %q\n", h.Domain, h.Tag)
		if h.NoRedirect {
			s.WriteString("http_to_https = false\n")
		}
		switch {
		case h.LE:
			s.WriteString("certificate_source = { type = \"lets_encrypt\" }\n")
		case h.Cert != "":
			more := ""
			if len(h.Additional) > 0 {
				chains := make([]string, len(h.Additional))
				for i, a := range h.Additional {
					chains[i] = fmt.Sprintf("{ cert_path = %q, key_path = %q }", a[0], a[1])
				}
				more = ", additional = [" + strings.Join(chains, ", ") + "]"
			}
			fmt.Fprintf(&s, "certificate_source = { type = \"file\", cert_path = %q, key_path = %q%s }\n", h.Cert, h.Key, more)
		}
	}
	for _, b := range c.Backends {
		fmt.Fprintf(&s, "\n[[backends]]\nid = %q\naddress = %q\ntags = [%s]\n", b.ID, b.Addr, quoteAll(b.Tags))
	}
	return s.String()
}

// quoteAll quotes each of xs for a TOML array.
func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// writeTLSConfig writes c to config.toml in a new temporary directory.
func writeTLSConfig(t testing.TB, c tlsConf) string {
	t.Helper()
	dir := t.TempDir()
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(dir, "acme-cache")
	}
	path := filepath.Join(dir, "config.toml")
	writeFile(t, path, c.String())
	return path
}

// startTLSProxy writes c, starts a proxy on it and requires an HTTPS
// listener.
func startTLSProxy(t testing.TB, c tlsConf) *proxyProc {
	t.Helper()
	p := startProxy(t, writeTLSConfig(t, c))
	if p.HTTPS == "" {
		t.Fatalf("fronttier did not log its https address:\n%s", p.out.String())
	}
	return p
}

// ---------------------------------------------------------------------------
// Clients and handshakes

// handshake opens a TLS connection to addr with SNI name (none if ""),
// offering ALPN protos, and returns the chain the server presented. It
// does not verify it.
func handshake(addr, name string, protos ...string) ([]*x509.Certificate, error) {
	return handshakeWith(addr, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: protos})
}

// handshakeWith opens a TLS connection to addr with the client
// configuration cfg and returns the chain the server presented.
func handshakeWith(addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates, nil
}

// verifiedLeaf handshakes with SNI name, verifies the chain against roots
// for name and returns the leaf.
func verifiedLeaf(t testing.TB, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	chain, err := handshake(addr, name)
	if err != nil {
		t.Fatalf("handshake with SNI %s: %v", name, err)
	}
	if err := verifyChain(chain, name, roots); err != nil {
		t.Fatalf("SNI %s: %v", name, err)
	}
	return chain[0]
}

// verifyChain verifies a presented chain for name against roots.
func verifyChain(chain []*x509.Certificate, name string, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return fmt.Errorf("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}

// httpsClient returns a client that sends every request to the proxy's
// HTTPS listener (whatever the URL's host, which gives the SNI name and
// Host) and trusts roots. h1Only forces HTTP/1.1; otherwise HTTP/2 is
// offered. Its idle connections are closed at the end of the test.
func (p *proxyProc) httpsClient(t testing.TB, roots *x509.CertPool, h1Only bool) (*http.Client, *http.Transport) {
	t.Helper()
	addr := p.HTTPS
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: !h1Only,
	}
	if h1Only {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, tr
}

// httpsURL is https://host:PORT/path with the port of the HTTPS listener.
func (p *proxyProc) httpsURL(host, path string) string {
	_, port, _ := net.SplitHostPort(p.HTTPS)
	return "https://" + host + ":" + port + path
}

// getEchoTLS sends GET over c and requires 200 and an echo.
func getEchoTLS(t testing.TB, c *http.Client, url string) (*http.Response, echoReply) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %q", url, resp.StatusCode, body)
	}
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("GET %s: not an echo: %v: %q", url, err, body)
	}
	return resp, e
}

// ---------------------------------------------------------------------------
// The certificate API

// certInfo is one entry of GET /api/v1/certificates.
type certInfo struct {
	Domain              string     `json:"domain"`
	ExpiresAt           *time.Time `json:"expires_at"`
	DaysUntilExpiration *int       `json:"days_until_expiration"`
	Source              string     `json:"source"`
	Status              string     `json:"status"`
	Names               []string   `json:"names"`
	Issuer              string     `json:"issuer"`
	NotBefore           *time.Time `json:"not_before"`
	LastLoadedAt        *time.Time `json:"last_loaded_at"`
	LastError           string     `json:"last_error"`
}

// certificates returns GET /api/v1/certificates by domain, with the raw
// JSON objects.
func (p *proxyProc) certificates(t testing.TB) (map[string]certInfo, map[string]map[string]json.RawMessage) {
	t.Helper()
	var raw []map[string]json.RawMessage
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/certificates", nil, &raw)
	infos := make(map[string]certInfo, len(raw))
	rawBy := make(map[string]map[string]json.RawMessage, len(raw))
	for _, r := range raw {
		data, _ := json.Marshal(r)
		var in certInfo
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("certificate entry %s: %v", data, err)
		}
		infos[in.Domain] = in
		rawBy[in.Domain] = r
	}
	return infos, rawBy
}

// certificate returns the certificate API's entry for domain.
func (p *proxyProc) certificate(t testing.TB, domain string) certInfo {
	t.Helper()
	infos, _ := p.certificates(t)
	in, ok := infos[domain]
	if !ok {
		t.Fatalf("GET /certificates has no entry for %s: %+v", domain, infos)
	}
	return in
}

// ---------------------------------------------------------------------------
// openssl s_client

// sClient is what openssl s_client reported.
type sClient struct {
	Code   int                 // exit code
	Out    string              // stdout and stderr
	Chain  []*x509.Certificate // from -showcerts, in order
	Verify string              // "Verify return code: ..." line, "" if none
}

// opensslBin returns the openssl binary's path; without one the test
// skips, or fails under CI.
func opensslBin(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not found (apt-get install openssl)")
		}
		t.Skip("openssl not found (apt-get install openssl)")
	}
	return bin
}

// opensslSClient runs openssl s_client against addr with SNI name, showing
// the certificates and verifying them against caFile (and name, when
// verifyName), with stdin closed so that it exits after the handshake.
func opensslSClient(t testing.TB, addr, name, caFile string, verifyName bool) sClient {
	t.Helper()
	bin := opensslBin(t)
	args := []string{"s_client", "-connect", addr, "-servername", name, "-showcerts",
		"-CAfile", caFile, "-verify_return_error"}
	if verifyName {
		args = append(args, "-verify_hostname", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = nil // /dev/null: s_client exits after the handshake
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("openssl %s: timed out:\n%s", strings.Join(args, " "), out.String())
	}
	r := sClient{Code: cmd.ProcessState.ExitCode(), Out: out.String()}
	if err != nil && r.Code < 0 {
		t.Fatalf("openssl: %v", err)
	}
	rest := out.Bytes()
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("openssl printed an unparsable certificate: %v", err)
		}
		r.Chain = append(r.Chain, c)
	}
	for line := range strings.SplitSeq(r.Out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Verify return code: "); ok {
			r.Verify = v
		}
	}
	return r
}
