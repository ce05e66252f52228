package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestStartupBrokenCertificate: a certificate file that is missing, or
// holds garbage, at start is reported as a failed reload is at run time
// (an error log naming the file, the certificate API's "error" status and
// last_error, certificate_reloads_total{result="failure"}) while the proxy
// starts and serves every other domain over HTTPS; `fronttier validate`
// still fails on the file. Once the file is fixed on disk the watcher
// loads it.
func TestStartupBrokenCertificate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, certPath string)
	}{
		{"missing", func(t *testing.T, certPath string) {
			if err := os.Remove(certPath); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, certPath string) {
			writeFile(t, certPath, "this is not a certificate\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const good, bad = "good.example.test", "bad.example.test"
			ca := newTestCA(t, t.TempDir())
			_, goodCert, goodKey := ca.issueFiles(t, "good", []string{good}, leafOpts{})
			_, badCert, badKey := ca.issueFiles(t, "bad", []string{bad}, leafOpts{})
			tc.spoil(t, badCert)
			b := startBackend(t, "sb")
			p := startTLSProxy(t, tlsConf{
				Hosts: []tlsHost{
					{Domain: good, Tag: "a", Cert: goodCert, Key: goodKey},
					{Domain: bad, Tag: "a", Cert: badCert, Key: badKey},
				},
				Backends: []backendConf{be("sb", b, "a")},
			})

			// The good domain is served over HTTPS, verified, by SNI.
			hc, _ := p.httpsClient(t, ca.Roots, false)
			if _, e := getEchoTLS(t, hc, p.httpsURL(good, "/")); e.BackendID != "sb" {
				t.Errorf("https://%s answered by %q, want sb", good, e.BackendID)
			}
			// The broken one has no certificate: no handshake, and plain
			// HTTP is proxied rather than redirected to where it fails.
			if _, err := handshake(p.HTTPS, bad); err == nil {
				t.Errorf("a handshake for %s succeeded with its certificate %s", bad, tc.name)
			}
			if resp, _ := p.get(t, bad, "/"); resp.StatusCode != http.StatusOK {
				t.Errorf("http://%s answered %d, want 200 from the backend", bad, resp.StatusCode)
			}

			// Reported as at run time.
			in := p.certificate(t, bad)
			if in.Status != "error" || in.Source != "file" || in.ExpiresAt != nil || !strings.Contains(in.LastError, badCert) {
				t.Errorf("certificate API for %s: %+v; want status error, no expiry, last_error naming %s", bad, in, badCert)
			}
			if in := p.certificate(t, good); in.Status != "valid" || in.LastError != "" {
				t.Errorf("certificate API for %s: %+v, want valid", good, in)
			}
			p.waitLog(t, func(l string) bool {
				m, ok := jsonLine(l)
				return ok && m["level"] == "ERROR" && m["domain"] == bad && strings.Contains(l, badCert)
			}, "an error naming "+badCert)
			if n := metricValue(t, p, "certificate_reloads_total", map[string]string{"domain": bad, "result": "failure"}); n < 1 {
				t.Errorf(`certificate_reloads_total{domain=%q,result="failure"} = %v, want >= 1`, bad, n)
			}

			// validate still refuses the file, naming it.
			code, stdout, stderr := validateFile(t, p.Config)
			if code != 1 || !strings.Contains(stdout+stderr, badCert) {
				t.Errorf("fronttier validate: exit %d, output %q; want 1 naming %s", code, stdout+stderr, badCert)
			}

			// Fixed on disk (by rename, as certbot does): the watcher
			// loads it and the domain is served.
			fixed := ca.issue(t, []string{bad}, leafOpts{})
			fixed.rename(t, badCert, badKey)
			eventually(t, waitTimeout, func() bool {
				in := p.certificate(t, bad)
				return in.Status == "valid" && in.LastError == ""
			}, bad, " loaded after its file was fixed")
			if leaf := verifiedLeaf(t, p.HTTPS, bad, ca.Roots); !leaf.Equal(fixed.Cert) {
				t.Errorf("%s serves serial %s, want the fixed %s", bad, leaf.SerialNumber.Text(16), fixed.Serial())
			}
			if _, e := getEchoTLS(t, hc, p.httpsURL(bad, "/")); e.BackendID != "sb" {
				t.Errorf("https://%s answered by %q, want sb", bad, e.BackendID)
			}
			if p.exited() {
				t.Fatal("the proxy exited")
			}
		})
	}
}
