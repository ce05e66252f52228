package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// This file runs a real Pebble (Let's Encrypt's test CA) and
// pebble-challtestsrv (as Pebble's DNS server) for the integration tests.
// CI installs them with
//
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3
//
// Without them the tests skip, unless CI is set, when they fail.

// pebbleStartTimeout bounds the wait for Pebble and challtestsrv to answer.
const pebbleStartTimeout = 15 * time.Second

// pebbleOptions configures startPebble.
type pebbleOptions struct {
	// validity of the certificates Pebble issues under its "default"
	// profile; zero means 90 days.
	validity time.Duration
	// profiles are more profiles by name, with the validity of their
	// certificates. With more than one profile, Pebble picks one at random
	// for an order that names none.
	profiles map[string]time.Duration
	// alternateRoots is the number of alternate chains Pebble offers
	// (PEBBLE_ALTERNATE_ROOTS).
	alternateRoots int
	// httpPort and tlsPort, when set, are where Pebble validates HTTP-01
	// and TLS-ALPN-01 (on the address its DNS gives for the name), instead
	// of a challengeFront of its own.
	httpPort, tlsPort int
}

// pebbleEnv is a running Pebble with its DNS server and the listeners that
// receive its HTTP-01 and TLS-ALPN-01 validations.
type pebbleEnv struct {
	DirectoryURL string // Pebble's ACME directory
	CARoot       string // PEM file of the root of Pebble's HTTPS certificate

	mgmtURL     string       // Pebble's management interface
	dnsMgmtURL  string       // challtestsrv's management interface
	client      *http.Client // trusts CARoot
	front       *challengeFront
	pebble, dns *process
}

// pebbleInstall is how to install Pebble and its DNS server.
const pebbleInstall = "go install github.com/letsencrypt/pebble/v2/cmd/...@v2.10.3"

// startPebble starts challtestsrv and Pebble on free loopback ports, with
// Pebble validating against a fresh challengeFront. Everything is stopped in
// t.Cleanup.
func startPebble(t *testing.T, o pebbleOptions) *pebbleEnv {
	t.Helper()
	pebbleBin := testutil.FindTool(t, "pebble", pebbleInstall)
	dnsBin := testutil.FindTool(t, "pebble-challtestsrv", pebbleInstall)
	if o.validity == 0 {
		o.validity = 90 * 24 * time.Hour
	}
	dir := t.TempDir()
	caRoot, certFile, keyFile := writePebbleTLS(t, dir)
	env := &pebbleEnv{CARoot: caRoot, client: httpClientTrusting(t, caRoot)}
	httpPort, tlsPort := o.httpPort, o.tlsPort
	if httpPort == 0 {
		env.front = startChallengeFront(t)
		httpPort, tlsPort = env.front.httpPort, env.front.tlsPort
	}

	// Ports are picked free and then released, so another process may take
	// one first; a process that exits before answering is started again on
	// new ports.
	var lastErr error
	for range 3 {
		dnsPort, dnsMgmtPort := testutil.FreeDNSPort(t), testutil.FreePort(t)
		env.dns = startProcess(t, dnsBin, nil,
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort),
			"-management", "127.0.0.1:"+strconv.Itoa(dnsMgmtPort),
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
		env.dnsMgmtURL = "http://127.0.0.1:" + strconv.Itoa(dnsMgmtPort)
		if lastErr = env.dns.waitReady(func(ctx context.Context) error {
			return testutil.ProbeDNS(ctx, dnsPort)
		}); lastErr != nil {
			env.dns.stop()
			continue
		}

		acmePort, mgmtPort := testutil.FreePort(t), testutil.FreePort(t)
		config := filepath.Join(dir, "pebble-config.json")
		profiles := map[string]any{"default": map[string]any{
			"description":    "fronttier tests",
			"validityPeriod": int(o.validity / time.Second),
		}}
		for name, validity := range o.profiles {
			profiles[name] = map[string]any{"description": name, "validityPeriod": int(validity / time.Second)}
		}
		writePebbleConfig(t, config, map[string]any{
			"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
			"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       httpPort,
			"tlsPort":                        tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"domainBlocklist":                []string{"blocked-domain.example"},
			"retryAfter":                     map[string]int{"authz": 0, "order": 0},
			"keyAlgorithm":                   "ecdsa",
			"profiles":                       profiles,
		})
		env.DirectoryURL = "https://127.0.0.1:" + strconv.Itoa(acmePort) + "/dir"
		env.mgmtURL = "https://127.0.0.1:" + strconv.Itoa(mgmtPort)
		env.pebble = startProcess(t, pebbleBin,
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0",
				"PEBBLE_ALTERNATE_ROOTS=" + strconv.Itoa(o.alternateRoots)},
			"-config", config, "-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort), "-strict=false")
		if lastErr = env.pebble.waitReady(func(ctx context.Context) error {
			return env.get(ctx, env.DirectoryURL, nil)
		}); lastErr != nil {
			env.pebble.stop()
			env.dns.stop()
			continue
		}
		return env
	}
	t.Fatalf("start pebble: %v", lastErr)
	return nil
}

// process is a child process whose output is kept for failure reports.
type process struct {
	name     string
	cmd      *exec.Cmd
	out      *testutil.SyncBuffer
	exited   chan struct{}
	stopOnce sync.Once
}

func startProcess(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: filepath.Base(bin), out: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// stop kills the process and waits for it to exit.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// waitReady polls probe until it succeeds, the process exits or
// pebbleStartTimeout passes.
func (p *process) waitReady(probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), pebbleStartTimeout)
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
		case <-p.exited:
			return fmt.Errorf("%s exited: %s", p.name, p.out.String())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.name, err)
		case <-tick.C:
		}
	}
}

func writePebbleConfig(t *testing.T, path string, pebble map[string]any) {
	t.Helper()
	data, err := json.MarshalIndent(map[string]any{"pebble": pebble}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writePebbleTLS writes a fresh root and a certificate for localhost and
// 127.0.0.1 signed by it, for Pebble's HTTPS.
func writePebbleTLS(t *testing.T, dir string) (rootFile, certFile, keyFile string) {
	t.Helper()
	rootKey := newKey(t)
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fronttier test root for pebble"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rootFile = filepath.Join(dir, "root.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	writePEM(t, rootFile, "CERTIFICATE", rootDER)
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return rootFile, certFile, keyFile
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func httpClientTrusting(t *testing.T, rootFile string) *http.Client {
	t.Helper()
	pool, err := loadRoots(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches url into out (when not nil) and fails on a non-2xx status.
func (e *pebbleEnv) get(ctx context.Context, url string, out io.Writer) error {
	return testutil.Fetch(ctx, e.client, url, out)
}

// post sends body as JSON to url and fails on a non-2xx status.
func (e *pebbleEnv) post(t *testing.T, url string, body any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, msg)
	}
}

// issuingRoots returns the root Pebble signs certificates under (a new one
// at every start).
func (e *pebbleEnv) issuingRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.root(t, 0))
	return pool
}

// root returns Pebble's root number no: 0 is the default chain's, the
// others those of the alternate chains.
func (e *pebbleEnv) root(t *testing.T, no int) *x509.Certificate {
	t.Helper()
	var buf bytes.Buffer
	if err := e.get(t.Context(), e.mgmtURL+"/roots/"+strconv.Itoa(no), &buf); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(buf.Bytes())
	if block == nil {
		t.Fatalf("no root certificate in %q", buf.String())
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// setA makes Pebble's DNS answer host with addrs (replacing what it
// answered before).
func (e *pebbleEnv) setA(t *testing.T, host string, addrs ...string) {
	t.Helper()
	e.post(t, e.dnsMgmtURL+"/clear-a", map[string]any{"host": host})
	e.post(t, e.dnsMgmtURL+"/add-a", map[string]any{"host": host, "addresses": addrs})
}

// setRenewalInfo makes Pebble's ARI answer for cert suggest the window
// [start, end).
func (e *pebbleEnv) setRenewalInfo(t *testing.T, cert *x509.Certificate, start, end time.Time) {
	t.Helper()
	ari, err := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start, "end": end}})
	if err != nil {
		t.Fatal(err)
	}
	e.post(t, e.mgmtURL+"/set-renewal-info/", map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		"ARIResponse": string(ari),
	})
}

// attach routes Pebble's validations to m, unless Pebble validates on
// ports of the test's choosing.
func (e *pebbleEnv) attach(m *Manager) {
	if e.front != nil {
		e.front.setManager(m)
	}
}

// challengeFront is what Pebble validates against: an HTTP server on
// httpPort and a TLS listener on tlsPort, answering through the attached
// Manager's HTTPHandler and ALPN, the way the proxy's listeners do.
type challengeFront struct {
	httpPort, tlsPort int
	manager           atomic.Pointer[Manager]
	refuseHTTP        sync.Map // host -> true: answer 404 to HTTP-01
	alpnServed        sync.Map // host -> *atomic.Int64: ALPN certificates served
	// hang: host -> true: validations of host hang (HTTP-01 gets no answer,
	// TLS-ALPN-01 no ServerHello) until Pebble gives up or the test ends;
	// hung receives the host of each validation that hangs (when there is
	// room); release ends the hangs at cleanup.
	hang    sync.Map
	hung    chan string
	release chan struct{}
}

// hangFor holds a validation of host if it must hang, and reports it.
func (f *challengeFront) hangFor(host string, done <-chan struct{}) bool {
	if _, ok := f.hang.Load(host); !ok {
		return false
	}
	select {
	case f.hung <- host:
	default:
	}
	select {
	case <-done:
	case <-f.release:
	}
	return true
}

func startChallengeFront(t *testing.T) *challengeFront {
	t.Helper()
	f := &challengeFront{hung: make(chan string, 256), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if f.hangFor(host, r.Context().Done()) {
			return
		}
		m := f.manager.Load()
		if _, refused := f.refuseHTTP.Load(host); refused || m == nil {
			http.NotFound(w, r)
			return
		}
		m.HTTPHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.httpPort = srv.Listener.Addr().(*net.TCPAddr).Port

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		NextProtos: []string{"h2", "http/1.1", ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if f.hangFor(hello.ServerName, hello.Context().Done()) {
				return nil, errors.New("hung")
			}
			m := f.manager.Load()
			if m == nil {
				return nil, errors.New("no manager")
			}
			cert, err := challengeCert(m, hello)
			if cert != nil {
				n, _ := f.alpnServed.LoadOrStore(hello.ServerName, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
			return cert, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.tlsPort = ln.Addr().(*net.TCPAddr).Port
	serveHandshakes(t, ln)
	// Registered last, so run first: before the handshakes are waited for
	// and before srv.Close, which waits for its handlers.
	t.Cleanup(func() { close(f.release) })
	return f
}

// challengeCert is m's TLS-ALPN-01 answer to hello, or an error when m
// has no challenge for it.
func challengeCert(m *Manager, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.ALPN(hello)
	if cert == nil && err == nil {
		return nil, errors.New("no challenge certificate")
	}
	return cert, err
}

// serveHandshakes completes the TLS handshake of each connection ln
// accepts, all a TLS-ALPN-01 validation needs, until the test ends.
func serveHandshakes(t *testing.T, ln net.Listener) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_ = conn.(*tls.Conn).Handshake()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

func (f *challengeFront) setManager(m *Manager) { f.manager.Store(m) }

// alpnCount is how many TLS-ALPN-01 certificates were served for host.
func (f *challengeFront) alpnCount(host string) int64 {
	n, ok := f.alpnServed.Load(host)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}
