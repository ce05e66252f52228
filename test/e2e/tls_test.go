package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests in this file check the manual's TLS chapter on the real binary
// with file certificates: SNI (seen by openssl s_client and Go clients),
// HTTP/2, redirects, the certificate API, hot reload, broken files, domains
// added over the API, validate, and the TLS metrics.

// tlsFixture is a proxy with an HTTPS listener and three file
// certificates signed by a test CA with an intermediate:
//
//	a.example.test        -> backend "ta" (tag a)
//	b.example.test        -> backend "tb" (tag b), http_to_https = false
//	*.wild.example.test   -> backend "tw" (tag w)
type tlsFixture struct {
	ca     *testCA
	p      *proxyProc
	leaves map[string]leaf      // by domain
	files  map[string][2]string // by domain: cert path, key path
}

// tlsFixtureOpts varies the fixture.
type tlsFixtureOpts struct {
	DefaultCert string
	HTTPSAddr   string
	Leaf        leafOpts // of the three leaf certificates
	// ExtraHosts are added to the configuration (their backends are the
	// fixture's: tags a, b, w).
	ExtraHosts []tlsHost
}

func newTLSFixture(t *testing.T, o tlsFixtureOpts) *tlsFixture {
	t.Helper()
	f := &tlsFixture{
		ca:     newTestCA(t, t.TempDir()),
		leaves: map[string]leaf{},
		files:  map[string][2]string{},
	}
	for base, domain := range map[string]string{"a": "a.example.test", "b": "b.example.test", "wild": "*.wild.example.test"} {
		l, cert, key := f.ca.issueFiles(t, base, []string{domain}, o.Leaf)
		f.leaves[domain], f.files[domain] = l, [2]string{cert, key}
	}
	ta, tb, tw := startBackend(t, "ta"), startBackend(t, "tb"), startBackend(t, "tw")
	host := func(domain, tag string) tlsHost {
		return tlsHost{Domain: domain, Tag: tag, Cert: f.files[domain][0], Key: f.files[domain][1]}
	}
	hb := host("b.example.test", "b")
	hb.NoRedirect = true
	f.p = startTLSProxy(t, tlsConf{
		HTTPSAddr:   o.HTTPSAddr,
		DefaultCert: o.DefaultCert,
		Hosts:       append([]tlsHost{host("a.example.test", "a"), hb, host("*.wild.example.test", "w")}, o.ExtraHosts...),
		Backends:    []backendConf{be("ta", ta, "a"), be("tb", tb, "b"), be("tw", tw, "w")},
	})
	return f
}

// sniCases are the SNI names of the fixture, the certificate domain each
// must get and the backend behind it.
var sniCases = []struct{ sni, certDomain, backend string }{
	{"a.example.test", "a.example.test", "ta"},
	{"b.example.test", "b.example.test", "tb"},
	{"x.wild.example.test", "*.wild.example.test", "tw"},
}

// TestTLSOpenSSLSNI: openssl s_client sees each domain's certificate by SNI,
// with the full chain, verifying against the test root; a name with no
// certificate fails the handshake, which tls_handshake_errors_total counts;
// the TLS metrics are exposed.
func TestTLSOpenSSLSNI(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	for _, c := range sniCases {
		t.Run(c.sni, func(t *testing.T) {
			r := opensslSClient(t, f.p.HTTPS, c.sni, f.ca.RootFile, true)
			if r.Code != 0 || r.Verify != "0 (ok)" {
				t.Fatalf("openssl s_client -servername %s: exit %d, %q, want exit 0 and Verify return code 0 (ok):\n%s", c.sni, r.Code, r.Verify, r.Out)
			}
			if len(r.Chain) != 2 {
				t.Fatalf("served %d certificates, want 2 (leaf and intermediate):\n%s", len(r.Chain), r.Out)
			}
			leaf := r.Chain[0]
			if want := f.leaves[c.certDomain].Cert; !leaf.Equal(want) {
				t.Errorf("leaf is %q (SAN %v), want the certificate of %s", leaf.Subject.CommonName, leaf.DNSNames, c.certDomain)
			}
			if leaf.Subject.CommonName != c.certDomain || !slices.Equal(leaf.DNSNames, []string{c.certDomain}) {
				t.Errorf("leaf CN %q SAN %v, want %s", leaf.Subject.CommonName, leaf.DNSNames, c.certDomain)
			}
			if !r.Chain[1].Equal(f.ca.inter) {
				t.Errorf("second certificate is %q, want the intermediate", r.Chain[1].Subject)
			}
			if !strings.Contains(r.Out, "CN = "+c.certDomain) && !strings.Contains(r.Out, "CN="+c.certDomain) {
				t.Errorf("s_client output does not show the subject CN %s:\n%s", c.certDomain, r.Out)
			}
		})
	}

	t.Run("no certificate for the name", func(t *testing.T) {
		before := metricValue(t, f.p, "tls_handshake_errors_total", map[string]string{"reason": "no_certificate"})
		r := opensslSClient(t, f.p.HTTPS, "nobody.example.test", f.ca.RootFile, false)
		// (s_client prints "Verify return code: 0 (ok)" even then: there
		// was nothing to verify.)
		if r.Code == 0 || len(r.Chain) > 0 || !strings.Contains(r.Out, "alert") {
			t.Fatalf("handshake for a name with no certificate: exit %d, %d certificates, want a failed handshake:\n%s", r.Code, len(r.Chain), r.Out)
		}
		if _, err := handshake(f.p.HTTPS, "nobody.example.test"); err == nil {
			t.Fatal("Go client: handshake for a name with no certificate succeeded")
		}
		if _, err := handshake(f.p.HTTPS, ""); err == nil {
			t.Fatal("Go client: handshake without SNI succeeded with no default certificate")
		}
		// The server counts a handshake error once it has logged it,
		// which may be just after the client saw the alert.
		eventually(t, waitTimeout, func() bool {
			return metricValue(t, f.p, "tls_handshake_errors_total", map[string]string{"reason": "no_certificate"}) >= before+3
		}, `tls_handshake_errors_total{reason="no_certificate"} counts the three failed handshakes`)
	})

	t.Run("metrics", func(t *testing.T) {
		samples := parseMetrics(t, scrapeMetrics(t, f.p))
		for _, w := range []struct {
			name   string
			labels map[string]string
			min    float64
		}{
			{"proxy_active_connections", nil, 0},
			{"certificate_days_until_expiration", map[string]string{"domain": "a.example.test"}, 4},
			{"certificate_days_until_expiration", map[string]string{"domain": "*.wild.example.test"}, 4},
			{"tls_handshake_errors_total", map[string]string{"reason": "no_certificate"}, 3},
		} {
			found := false
			for _, s := range samples {
				if s.name == w.name && hasLabels(s.labels, w.labels) {
					found = true
					if s.value < w.min {
						t.Errorf("%s%v = %v, want >= %v", w.name, w.labels, s.value, w.min)
					}
					if w.name == "certificate_days_until_expiration" && s.value > 5 {
						t.Errorf("%s%v = %v, want about 5 (the leaf's lifetime)", w.name, w.labels, s.value)
					}
				}
			}
			if !found {
				t.Errorf("no %s%v in /api/v1/metrics", w.name, w.labels)
			}
			if t.Failed() {
				t.Logf("metrics:\n%s", grepLines(scrapeMetrics(t, f.p), w.name))
			}
		}
	})
}

// TestTLSDefaultCertificate: with proxy.default_certificate, a name with no
// certificate gets the default one instead of a failed handshake.
func TestTLSDefaultCertificate(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{DefaultCert: "a.example.test"})
	r := opensslSClient(t, f.p.HTTPS, "nobody.example.test", f.ca.RootFile, false)
	if r.Code != 0 || r.Verify != "0 (ok)" || len(r.Chain) != 2 {
		t.Fatalf("openssl s_client -servername nobody.example.test: exit %d, %q, %d certificates; want the default certificate with its chain:\n%s", r.Code, r.Verify, len(r.Chain), r.Out)
	}
	if !r.Chain[0].Equal(f.leaves["a.example.test"].Cert) {
		t.Fatalf("served %q %v, want the default certificate a.example.test", r.Chain[0].Subject, r.Chain[0].DNSNames)
	}
	// So does a client that sends no SNI.
	if chain, err := handshake(f.p.HTTPS, ""); err != nil || !chain[0].Equal(f.leaves["a.example.test"].Cert) {
		t.Fatalf("handshake without SNI: %v, want the default certificate", err)
	}
	// Names with a certificate still get their own.
	if leaf := verifiedLeaf(t, f.p.HTTPS, "b.example.test", f.ca.Roots); !leaf.Equal(f.leaves["b.example.test"].Cert) {
		t.Fatalf("b.example.test got %v", leaf.DNSNames)
	}
}

// TestTLSClients: a Go client over HTTPS reaches the pool of each SNI name
// with X-Forwarded-Proto https, over HTTP/2 by default and HTTP/1.1 when
// forced.
func TestTLSClients(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	for _, proto := range []struct {
		name   string
		h1Only bool
		major  int
	}{{"h2", false, 2}, {"http/1.1", true, 1}} {
		t.Run(proto.name, func(t *testing.T) {
			c, _ := f.p.httpsClient(t, f.ca.Roots, proto.h1Only)
			for _, sc := range sniCases {
				resp, e := getEchoTLS(t, c, f.p.httpsURL(sc.sni, "/p?q=1"))
				if resp.ProtoMajor != proto.major {
					t.Errorf("%s: %s, want HTTP/%d", sc.sni, resp.Proto, proto.major)
				}
				if e.BackendID != sc.backend {
					t.Errorf("%s: answered by %q, want %q", sc.sni, e.BackendID, sc.backend)
				}
				if got := e.Headers["X-Forwarded-Proto"]; got != "https" {
					t.Errorf("%s: backend saw X-Forwarded-Proto %q, want https", sc.sni, got)
				}
				if e.URI != "/p?q=1" {
					t.Errorf("%s: backend saw %q, want /p?q=1", sc.sni, e.URI)
				}
				if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
					t.Errorf("%s: TLS state %+v", sc.sni, resp.TLS)
				}
			}
		})
	}
}

// TestTLSVersions: TLS 1.2 and 1.3 are accepted, 1.0 and 1.1 refused; TLS
// 1.2 negotiates a forward-secret AEAD suite.
func TestTLSVersions(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	for _, v := range []struct {
		version uint16
		ok      bool
	}{{tls.VersionTLS10, false}, {tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		name := tls.VersionName(v.version)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.p.HTTPS, &tls.Config{
			ServerName: "a.example.test", RootCAs: f.ca.Roots, MinVersion: v.version, MaxVersion: v.version,
		})
		if !v.ok {
			if err == nil {
				conn.Close()
				t.Errorf("%s accepted", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		st := conn.ConnectionState()
		conn.Close()
		if st.Version != v.version {
			t.Errorf("%s: negotiated %s", name, tls.VersionName(st.Version))
		}
		if s := tls.CipherSuiteName(st.CipherSuite); v.version == tls.VersionTLS12 && !strings.HasPrefix(s, "TLS_ECDHE_") ||
			!strings.Contains(s, "GCM") && !strings.Contains(s, "CHACHA20_POLY1305") {
			t.Errorf("%s: cipher suite %s is not forward-secret AEAD", name, s)
		}
	}
}

// TestTLSRedirect: on HTTP, a host with a loaded certificate is redirected
// to HTTPS with its path, query and the HTTPS listener's port; ACME
// challenges are not redirected; a host with http_to_https = false is
// proxied.
func TestTLSRedirect(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, f *tlsFixture) (location string) {
		resp, body := f.p.get(t, "a.example.test", "/p?q=1")
		if resp.StatusCode != http.StatusMovedPermanently {
			t.Fatalf("HTTP a.example.test/p?q=1: %d %q, want 301", resp.StatusCode, body)
		}
		location = resp.Header.Get("Location")

		// The challenge path is answered by the ACME side (404 here: no
		// such token), never redirected.
		resp, body = f.p.get(t, "a.example.test", "/.well-known/acme-challenge/x")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("HTTP /.well-known/acme-challenge/x: %d (Location %q) %q, want 404 from the ACME side, not a redirect",
				resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if e := f.p.getEcho(t, "b.example.test", "/p?q=1"); e.BackendID != "tb" || e.Headers["X-Forwarded-Proto"] != "http" {
			t.Errorf("HTTP b.example.test (http_to_https = false): %+v, want proxied to tb over http", e)
		}
		return location
	}

	t.Run("fixed port", func(t *testing.T) {
		t.Parallel()
		f := newTLSFixture(t, tlsFixtureOpts{HTTPSAddr: freeAddr(t)})
		if got, want := check(t, f), f.p.httpsURL("a.example.test", "/p?q=1"); got != want {
			t.Fatalf("Location %q, want %q", got, want)
		}
	})
	t.Run("port 0", func(t *testing.T) {
		t.Parallel()
		f := newTLSFixture(t, tlsFixtureOpts{})
		got, want := check(t, f), f.p.httpsURL("a.example.test", "/p?q=1")
		if got != want {
			t.Fatalf("Location %q, want %q", got, want)
		}
	})
}

// TestTLSCertificateAPI: GET /api/v1/certificates reports each file
// certificate with the manual's fields and ours.
func TestTLSCertificateAPI(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	infos, raw := f.p.certificates(t)
	if len(infos) != 3 {
		t.Errorf("%d certificates listed, want 3: %+v", len(infos), infos)
	}
	fields := []string{"domain", "expires_at", "days_until_expiration", "source", "status",
		"names", "issuer", "not_before", "last_loaded_at", "last_error"}
	for domain, l := range f.leaves {
		in, ok := infos[domain]
		if !ok {
			t.Errorf("no entry for %s", domain)
			continue
		}
		for _, k := range fields {
			if _, ok := raw[domain][k]; !ok {
				t.Errorf("%s: field %q missing: %s", domain, k, mustJSON(raw[domain]))
			}
		}
		// expires_at and not_before are RFC 3339 strings.
		for _, k := range []string{"expires_at", "not_before", "last_loaded_at"} {
			var s string
			if err := json.Unmarshal(raw[domain][k], &s); err != nil {
				t.Errorf("%s: %s is %s, want an RFC 3339 string", domain, k, raw[domain][k])
			} else if _, err := time.Parse(time.RFC3339, s); err != nil {
				t.Errorf("%s: %s %q is not RFC 3339: %v", domain, k, s, err)
			}
		}
		if in.ExpiresAt == nil || !in.ExpiresAt.Equal(l.Cert.NotAfter.Truncate(time.Second)) {
			t.Errorf("%s: expires_at %v, want %v", domain, in.ExpiresAt, l.Cert.NotAfter.UTC())
		}
		if in.NotBefore == nil || !in.NotBefore.Equal(l.Cert.NotBefore.Truncate(time.Second)) {
			t.Errorf("%s: not_before %v, want %v", domain, in.NotBefore, l.Cert.NotBefore.UTC())
		}
		if in.DaysUntilExpiration == nil || *in.DaysUntilExpiration != 4 {
			t.Errorf("%s: days_until_expiration %v, want 4 (5 days less a moment)", domain, in.DaysUntilExpiration)
		}
		if in.Source != "file" || in.Status != "valid" || in.LastError != "" {
			t.Errorf("%s: source %q status %q last_error %q, want file, valid, none", domain, in.Source, in.Status, in.LastError)
		}
		if !slices.Equal(in.Names, []string{domain}) {
			t.Errorf("%s: names %v", domain, in.Names)
		}
		if in.Issuer != f.ca.interName {
			t.Errorf("%s: issuer %q, want %q", domain, in.Issuer, f.ca.interName)
		}
		if in.LastLoadedAt == nil || time.Since(*in.LastLoadedAt) > time.Minute || time.Until(*in.LastLoadedAt) > time.Second {
			t.Errorf("%s: last_loaded_at %v, want about now", domain, in.LastLoadedAt)
		}
	}
}

// TestTLSHotReload: replacing a certificate and key (in place, then by
// rename) changes what new handshakes see within seconds, logs
// "Certificate reloaded", and leaves an open connection working with the
// certificate it was handshaken with.
func TestTLSHotReload(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	const domain = "a.example.test"
	files := f.files[domain]

	// One keep-alive HTTP/1.1 connection, opened before any change.
	client, tr := f.p.httpsClient(t, f.ca.Roots, true)
	tr.MaxConnsPerHost = 1
	var first *tls.ConnectionState
	url := f.p.httpsURL(domain, "/")
	get := func(wantReused bool) *tls.ConnectionState {
		t.Helper()
		var reused bool
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s on the open connection: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
		if wantReused && !reused {
			t.Fatalf("GET %s: the client opened a new connection; the open one was closed", url)
		}
		return resp.TLS
	}
	first = get(false)
	oldSerial := first.PeerCertificates[0].SerialNumber.Text(16)
	if oldSerial != f.leaves[domain].Serial() {
		t.Fatalf("first connection got serial %s, want %s", oldSerial, f.leaves[domain].Serial())
	}

	for _, how := range []string{"in place", "by rename"} {
		t.Run(how, func(t *testing.T) {
			logFrom := len(f.p.out.Lines())
			next := f.ca.issue(t, []string{domain}, leafOpts{})
			if how == "in place" {
				next.write(t, files[0], files[1])
			} else {
				next.rename(t, files[0], files[1])
			}
			var got string
			eventually(t, waitTimeout, func() bool {
				chain, err := handshake(f.p.HTTPS, domain)
				if err != nil {
					t.Fatalf("new handshake after the change: %v", err)
				}
				got = chain[0].SerialNumber.Text(16)
				return got == next.Serial()
			}, "new handshakes present the new certificate (serial ", next.Serial(), "), last seen ", got)
			// And it verifies, with its chain.
			if leaf := verifiedLeaf(t, f.p.HTTPS, domain, f.ca.Roots); !leaf.Equal(next.Cert) {
				t.Fatalf("verified leaf serial %s", leaf.SerialNumber.Text(16))
			}
			line, _, ok := f.p.out.waitFor(logFrom, waitTimeout, f.p.done, func(l string) bool {
				m, ok := jsonLine(l)
				return ok && m["msg"] == "Certificate reloaded" && m["domain"] == domain
			})
			if !ok {
				t.Fatalf("no \"Certificate reloaded\" log line with domain %s", domain)
			}
			if m, _ := jsonLine(line); m["expires_at"] == nil {
				t.Errorf("Certificate reloaded line has no expires_at: %s", line)
			}
			if in := f.p.certificate(t, domain); in.ExpiresAt == nil || !in.ExpiresAt.Equal(next.Cert.NotAfter.Truncate(time.Second)) || in.LastError != "" {
				t.Errorf("certificate API after the reload: %+v", in)
			}

			// The connection opened before both changes still works, with
			// the certificate it was handshaken with.
			st := get(true)
			if s := st.PeerCertificates[0].SerialNumber.Text(16); s != oldSerial {
				t.Errorf("the open connection's certificate changed: serial %s, want %s", s, oldSerial)
			}
		})
	}
}

// TestTLSBrokenFile: garbage in the certificate file leaves the last good
// certificate serving, the certificate API names the file in last_error
// and the reload API answers 4xx with a JSON error; a good file again
// reloads with the manual's 200 answer.
func TestTLSBrokenFile(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	const domain = "a.example.test"
	files := f.files[domain]
	good := f.leaves[domain]
	logFrom := len(f.p.out.Lines())

	writeFile(t, files[0], "this is not a certificate\n")
	// The watcher reports the failure; from then on nothing may change.
	eventually(t, waitTimeout, func() bool { return f.p.certificate(t, domain).LastError != "" },
		"last_error is set after garbage was written into ", files[0])
	in := f.p.certificate(t, domain)
	if !strings.Contains(in.LastError, files[0]) {
		t.Errorf("last_error %q does not name the file %s", in.LastError, files[0])
	}
	if in.ExpiresAt == nil || !in.ExpiresAt.Equal(good.Cert.NotAfter.Truncate(time.Second)) || in.Status != "valid" {
		t.Errorf("after garbage the API shows %+v, want the previous certificate still valid", in)
	}
	if _, _, ok := f.p.out.waitFor(logFrom, waitTimeout, f.p.done, func(l string) bool {
		m, ok := jsonLine(l)
		return ok && m["level"] == "ERROR" && m["domain"] == domain && strings.Contains(l, files[0])
	}); !ok {
		t.Errorf("no error logged naming %s", files[0])
	}
	// New handshakes keep getting the last good certificate, for as long as
	// the watcher's debounce and a few re-checks take.
	probe := time.NewTicker(50 * time.Millisecond)
	defer probe.Stop()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); <-probe.C {
		if leaf := verifiedLeaf(t, f.p.HTTPS, domain, f.ca.Roots); !leaf.Equal(good.Cert) {
			t.Fatalf("a handshake after garbage got serial %s, want the last good %s", leaf.SerialNumber.Text(16), good.Serial())
		}
	}

	var e struct {
		Error string `json:"error"`
	}
	status, data, err := f.p.tryAPI(http.MethodPost, "/certificates/"+domain+"/reload", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status/100 != 4 || json.Unmarshal(data, &e) != nil || e.Error == "" {
		t.Fatalf("POST reload with a garbage file: %d %s, want 4xx with a JSON error", status, data)
	}
	if !strings.Contains(e.Error, files[0]) {
		t.Errorf("reload error %q does not name the file %s", e.Error, files[0])
	}
	if leaf := verifiedLeaf(t, f.p.HTTPS, domain, f.ca.Roots); !leaf.Equal(good.Cert) {
		t.Fatalf("after a failed forced reload the served serial is %s", leaf.SerialNumber.Text(16))
	}

	// A good file again; the forced reload succeeds (whether or not the
	// watcher got there first).
	next := f.ca.issue(t, []string{domain}, leafOpts{})
	next.rename(t, files[0], files[1])
	var ok struct {
		Message string `json:"message"`
		Domain  string `json:"domain"`
	}
	f.p.mustAPI(t, http.StatusOK, http.MethodPost, "/certificates/"+domain+"/reload", nil, &ok)
	if ok.Message != "Certificate reloaded successfully for domain: "+domain || ok.Domain != domain {
		t.Errorf("reload answer %+v", ok)
	}
	if leaf := verifiedLeaf(t, f.p.HTTPS, domain, f.ca.Roots); !leaf.Equal(next.Cert) {
		t.Fatalf("after the reload API answered 200 the served serial is %s, want %s", leaf.SerialNumber.Text(16), next.Serial())
	}
	if in := f.p.certificate(t, domain); in.LastError != "" || in.Status != "valid" {
		t.Errorf("after a good reload: %+v", in)
	}
	// Unknown domains are 404 with a JSON error.
	status, data, _ = f.p.tryAPI(http.MethodPost, "/certificates/nobody.example.test/reload", nil)
	if status != http.StatusNotFound || json.Unmarshal(data, &e) != nil || e.Error == "" {
		t.Errorf("POST reload of an unknown domain: %d %s, want 404 with a JSON error", status, data)
	}
}

// TestTLSDomainOverAPI: a domain added over the API with a file
// certificate is served by SNI as soon as the API answers 201; a mismatched
// key is refused with 400 naming the file and changes nothing.
func TestTLSDomainOverAPI(t *testing.T) {
	t.Parallel()
	f := newTLSFixture(t, tlsFixtureOpts{})
	c, cert, key := f.ca.issueFiles(t, "c", []string{"c.example.test"}, leafOpts{})
	_, otherCert, _ := f.ca.issueFiles(t, "other", []string{"c.example.test"}, leafOpts{})

	before := readFile(t, f.p.Config)
	var e struct {
		Error string `json:"error"`
	}
	status, data, err := f.p.tryAPI(http.MethodPost, "/domains", map[string]any{
		"domain": "c.example.test", "enabled_backends_tag": "a",
		"certificate_source": map[string]string{"type": "file", "cert_path": otherCert, "key_path": key},
	})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusBadRequest || json.Unmarshal(data, &e) != nil || e.Error == "" {
		t.Fatalf("POST a domain whose key does not match: %d %s, want 400 with a JSON error", status, data)
	}
	if !strings.Contains(e.Error, otherCert) && !strings.Contains(e.Error, key) {
		t.Errorf("error %q names neither %s nor %s", e.Error, otherCert, key)
	}
	if after := readFile(t, f.p.Config); !bytes.Equal(before, after) {
		t.Errorf("the refused POST changed the config file:\n%s", after)
	}
	if resp, _ := f.p.get(t, "c.example.test", "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused domain answers %d, want 404", resp.StatusCode)
	}
	if _, err := handshake(f.p.HTTPS, "c.example.test"); err == nil {
		t.Errorf("the refused domain's name gets a certificate")
	}

	f.p.mustAPI(t, http.StatusCreated, http.MethodPost, "/domains", map[string]any{
		"domain": "c.example.test", "enabled_backends_tag": "a",
		"certificate_source": map[string]string{"type": "file", "cert_path": cert, "key_path": key},
	}, nil)
	// At once: no polling.
	if leaf := verifiedLeaf(t, f.p.HTTPS, "c.example.test", f.ca.Roots); !leaf.Equal(c.Cert) {
		t.Fatalf("c.example.test got serial %s, want %s", leaf.SerialNumber.Text(16), c.Serial())
	}
	hc, _ := f.p.httpsClient(t, f.ca.Roots, false)
	if _, e := getEchoTLS(t, hc, f.p.httpsURL("c.example.test", "/")); e.BackendID != "ta" {
		t.Errorf("c.example.test answered by %q, want ta", e.BackendID)
	}
	if resp, _ := f.p.get(t, "c.example.test", "/"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("HTTP c.example.test: %d, want 301 now that its certificate is loaded", resp.StatusCode)
	}
	if in := f.p.certificate(t, "c.example.test"); in.Source != "file" || in.Status != "valid" {
		t.Errorf("certificate API: %+v", in)
	}
	if !bytes.Contains(readFile(t, f.p.Config), []byte(cert)) {
		t.Errorf("the config file does not name %s", cert)
	}
	requireValid(t, f.p.Config)
}

// TestTLSValidateCertFiles: fronttier validate fails, naming the file, on
// an expired, a garbage and a missing certificate file and on a mismatched
// key.
func TestTLSValidateCertFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	now := time.Now()
	_, goodCert, goodKey := ca.issueFiles(t, "good", []string{"good.example.test"}, leafOpts{})
	_, expCert, expKey := ca.issueFiles(t, "expired", []string{"expired.example.test"},
		leafOpts{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	_, _, otherKey := ca.issueFiles(t, "other", []string{"good.example.test"}, leafOpts{})
	garbage := filepath.Join(dir, "garbage.crt")
	writeFile(t, garbage, "garbage\n")

	cfg := func(cert, key string) string {
		return writeTLSConfig(t, tlsConf{
			Hosts:    []tlsHost{{Domain: "v.example.test", Tag: "a", Cert: cert, Key: key}},
			Backends: []backendConf{{ID: "b1", Addr: "127.0.0.1:9", Tags: []string{"a"}}},
		})
	}
	requireValid(t, cfg(goodCert, goodKey))
	for _, c := range []struct{ name, cert, key, names string }{
		{"expired", expCert, expKey, expCert},
		{"garbage", garbage, goodKey, garbage},
		{"missing", filepath.Join(dir, "missing.crt"), goodKey, filepath.Join(dir, "missing.crt")},
		{"mismatched key", goodCert, otherKey, goodCert},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := cfg(c.cert, c.key)
			code, stdout, stderr := validateFile(t, path)
			if code != 1 {
				t.Errorf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
			}
			if out := stdout + stderr; !strings.Contains(out, c.names) {
				t.Errorf("output does not name %s:\n%s", c.names, out)
			}
		})
	}
}

// scrapeMetrics returns GET /api/v1/metrics.
func scrapeMetrics(t *testing.T, p *proxyProc) string {
	t.Helper()
	status, data, err := p.tryAPI(http.MethodGet, "/metrics", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /api/v1/metrics: %d %v", status, err)
	}
	return string(data)
}

// metricValue returns the sum of the samples of name with labels.
func metricValue(t *testing.T, p *proxyProc, name string, labels map[string]string) float64 {
	t.Helper()
	var v float64
	for _, s := range parseMetrics(t, scrapeMetrics(t, p)) {
		if s.name == name && hasLabels(s.labels, labels) {
			v += s.value
		}
	}
	return v
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
