package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"fronttier/internal/testutil"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The tests in this file run external conformance tools against the HTTPS
// listener. They are slow and need the tools installed, so they run only
// when asked:
//
//	TESTSSL=1 go test -run TestTestSSL -v ./test/e2e/    # apt-get install testssl.sh
//	H2SPEC=1  go test -run TestH2Spec -v ./test/e2e/     # go install github.com/summerwind/h2spec/cmd/h2spec@latest
//
// TOOLS_OUT=DIR keeps the tools' reports in DIR. README.md's "TLS" and
// "Testing" sections record the results.

// toolsOut is where a tool's reports go: TOOLS_OUT, else a temporary
// directory.
func toolsOut(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TOOLS_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// testsslFinding is one entry of testssl's --jsonfile output.
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// TestTestSSL runs testssl.sh (the Debian package's "testssl") against the
// HTTPS listener with an ECDSA and then an RSA certificate and fails on any
// finding of severity MEDIUM or above, and on any protocol other than TLS
// 1.2 and 1.3 being offered.
func TestTestSSL(t *testing.T) {
	if os.Getenv("TESTSSL") == "" {
		t.Skip("set TESTSSL=1 to run testssl.sh against the HTTPS listener")
	}
	bin := ""
	for _, name := range []string{"testssl", "testssl.sh"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("testssl.sh is not installed (apt-get install testssl.sh)")
	}
	out := toolsOut(t)
	for _, key := range []struct {
		name string
		rsa  bool
	}{{"ECDSA", false}, {"RSA", true}} {
		t.Run(key.name, func(t *testing.T) {
			// A certificate as a public CA would issue it: 90 days, with
			// revocation URLs (testssl rates the certificate too).
			f := newTLSFixture(t, tlsFixtureOpts{DefaultCert: "a.example.test", Leaf: leafOpts{
				RSA:      key.rsa,
				NotAfter: time.Now().Add(90 * 24 * time.Hour),
				OCSP:     "http://ocsp.example.test/",
				CRL:      "http://crl.example.test/intermediate.crl",
			}})
			jsonFile := filepath.Join(out, "testssl-"+strings.ToLower(key.name)+".json")
			logFile := filepath.Join(out, "testssl-"+strings.ToLower(key.name)+".txt")
			os.Remove(jsonFile)
			os.Remove(logFile)
			_, port, _ := strings.Cut(f.p.HTTPS, ":")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--quiet", "--color", "0", "--warnings", "batch",
				"--protocols", "--std", "--server-defaults", "--vulnerable",
				"--ip", "127.0.0.1", "--sneaky", "--add-ca", f.ca.RootFile,
				"--jsonfile", jsonFile, "--logfile", logFile,
				"a.example.test:"+port)
			text, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("testssl timed out:\n%s", text)
			}
			t.Logf("testssl %s: exit %v; report in %s", key.name, err, logFile)
			data, rerr := os.ReadFile(jsonFile)
			if rerr != nil {
				t.Fatalf("no JSON report (%v); testssl said:\n%s", rerr, text)
			}
			var findings []testsslFinding
			if err := json.Unmarshal(data, &findings); err != nil {
				t.Fatalf("JSON report: %v", err)
			}
			checkTestSSL(t, findings)
		})
	}
}

// checkTestSSL fails on weak findings and logs a summary.
func checkTestSSL(t *testing.T, findings []testsslFinding) {
	t.Helper()
	bySeverity := map[string][]string{}
	for _, fd := range findings {
		bySeverity[fd.Severity] = append(bySeverity[fd.Severity], fd.ID+": "+fd.Finding)
		switch fd.ID {
		case "SSLv2", "SSLv3", "TLS1", "TLS1_1":
			if !strings.HasPrefix(fd.Finding, "not offered") {
				t.Errorf("%s: %s, want not offered", fd.ID, fd.Finding)
			}
		case "TLS1_2", "TLS1_3":
			if !strings.HasPrefix(fd.Finding, "offered") {
				t.Errorf("%s: %s, want offered", fd.ID, fd.Finding)
			}
		}
	}
	for _, sev := range []string{"MEDIUM", "HIGH", "CRITICAL"} {
		for _, f := range bySeverity[sev] {
			t.Errorf("testssl flags %s: %s", sev, f)
		}
	}
	var summary []string
	for _, sev := range []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "INFO", "OK"} {
		summary = append(summary, fmt.Sprintf("%s %d", sev, len(bySeverity[sev])))
	}
	t.Logf("testssl findings by severity: %s", strings.Join(summary, ", "))
	for _, sev := range []string{"LOW", "WARN"} {
		for _, f := range bySeverity[sev] {
			t.Logf("  %s: %s", sev, f)
		}
	}
}

// h2specSummary matches h2spec's last line, "N tests, P passed, S
// skipped, F failed".
var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// h2specReport is the part of h2spec's JUnit report the test reads.
type h2specReport struct {
	Suites []struct {
		Cases []struct {
			Package   string    `xml:"package,attr"`
			ClassName string    `xml:"classname,attr"`
			Failure   *struct{} `xml:"failure"`
			Error     *struct{} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestH2Spec runs h2spec (HTTP/2 conformance, RFC 7540/9113 and HPACK)
// against the HTTPS listener, for a host whose backend is a testbackend,
// and fails on any failed case. Three cases that Go's own HTTP/2 server
// fails (6.5.3 #1, 8.1.2.2 #1 and #2) pass through internal/h2guard; 4.2
// #3 needs the listener's 16 KiB frame size instead of Go's 1 MiB.
func TestH2Spec(t *testing.T) {
	if os.Getenv("H2SPEC") == "" {
		t.Skip("set H2SPEC=1 to run h2spec against the HTTPS listener")
	}
	bin := testutil.FindTool(t, "h2spec", "go install github.com/summerwind/h2spec/cmd/h2spec@latest")
	out := toolsOut(t)
	// h2spec's -h is the address dialled, the SNI name and :authority at
	// once: "localhost" is a virtual host (on tag a, backend "ta") and,
	// having no certificate of its own, gets the default one.
	f := newTLSFixture(t, tlsFixtureOpts{DefaultCert: "a.example.test",
		ExtraHosts: []tlsHost{{Domain: "localhost", Tag: "a", NoRedirect: true}}})
	_, port, _ := strings.Cut(f.p.HTTPS, ":")
	hc, _ := f.p.httpsClient(t, nil, false)
	hc.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	if resp, e := getEchoTLS(t, hc, f.p.httpsURL("localhost", "/")); e.BackendID != "ta" || resp.ProtoMajor != 2 {
		t.Fatalf("https://localhost/ over %s answered by %q, want ta over HTTP/2", resp.Proto, e.BackendID)
	}
	junit := filepath.Join(out, "h2spec.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", "localhost", "-p", port, "-t", "-k", "-o", "5", "-j", junit)
	text, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("h2spec timed out:\n%s", text)
	}
	if d := os.Getenv("TOOLS_OUT"); d != "" {
		writeFile(t, filepath.Join(d, "h2spec.txt"), string(text))
	}
	m := h2specSummary.FindStringSubmatch(string(text))
	if m == nil {
		t.Fatalf("h2spec: %v; no summary line in its output:\n%s", err, text)
	}
	t.Logf("h2spec: %s", m[0])
	var rep h2specReport
	if err := xml.Unmarshal(readFile(t, junit), &rep); err != nil {
		t.Fatalf("h2spec JUnit report: %v", err)
	}
	var failed []string
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, c.Package+": "+c.ClassName)
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("h2spec failures:\n%s\n\nh2spec output:\n%s", strings.Join(failed, "\n"), text)
	}
}
