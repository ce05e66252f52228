package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/testutil"
)

// testCA is a certificate authority of the test PKI.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newRoot returns a self-signed root CA.
func newRoot(t testing.TB) *testCA {
	t.Helper()
	key := testutil.ECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          testutil.Serial(t),
		Subject:               pkix.Name{CommonName: "fronttier test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

// intermediate returns a CA signed by ca.
func (ca *testCA) intermediate(t testing.TB) *testCA {
	t.Helper()
	key := testutil.ECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          testutil.Serial(t),
		Subject:               pkix.Name{CommonName: "fronttier test intermediate"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leafOpts describes a leaf certificate; zero values mean an ECDSA key in
// SEC 1 form, valid from an hour ago for 90 days.
type leafOpts struct {
	names     []string
	rsa       bool
	keyForm   string // "sec1" (EC default), "pkcs1" (RSA default) or "pkcs8"
	notBefore time.Time
	notAfter  time.Time
	chain     []*testCA // intermediates appended to the file, in order
}

// pair is a generated certificate and key in PEM.
type pair struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
	key             crypto.Signer
}

// leaf issues a certificate signed by ca.
func (ca *testCA) leaf(t testing.TB, o leafOpts) pair {
	t.Helper()
	var key crypto.Signer
	if o.rsa {
		key = rsaKey(t)
	} else {
		key = testutil.ECKey(t)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	cn := ""
	if len(o.names) > 0 {
		cn = o.names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: testutil.Serial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     o.names,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var certPEM bytes.Buffer
	_ = pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, c := range o.chain {
		_ = pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
	}
	return pair{certPEM: certPEM.Bytes(), keyPEM: encodeKey(t, key, o.keyForm), leaf: leaf, key: key}
}

// encodeKey encodes key in form ("" picks PKCS#1 for RSA, SEC 1 for EC).
func encodeKey(t testing.TB, key crypto.Signer, form string) []byte {
	t.Helper()
	var block *pem.Block
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if form == "" || form == "pkcs1" {
			block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		}
	case *ecdsa.PrivateKey:
		if form == "" || form == "sec1" {
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		}
	}
	if block == nil {
		if form != "pkcs8" {
			t.Fatalf("key form %q does not apply to %T", form, key)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	return pem.EncodeToMemory(block)
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeFile writes data to path, creating directories.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writePair writes p to dir/name.crt and dir/name.key and returns a file
// Host for domain.
func writePair(t testing.TB, dir, name, domain string, p pair) Host {
	t.Helper()
	h := Host{Domain: domain, Source: SourceFile,
		CertPath: filepath.Join(dir, name+".crt"), KeyPath: filepath.Join(dir, name+".key")}
	writeFile(t, h.CertPath, p.certPEM)
	writeFile(t, h.KeyPath, p.keyPEM)
	return h
}

// pairOf returns the files of a file Host, to list it among another
// host's Additional chains.
func pairOf(h Host) Pair { return Pair{CertPath: h.CertPath, KeyPath: h.KeyPath} }

// newTestManager returns a Manager logging to the returned buffer (and to
// the test log on failure) with a fresh pedantic registry.
func newTestManager(t testing.TB, o Options) (*Manager, *testutil.SyncBuffer, *prometheus.Registry) {
	t.Helper()
	buf := &testutil.SyncBuffer{}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewPedanticRegistry()
	if o.Registerer == nil {
		o.Registerer = reg
	}
	m := New(o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", buf.String())
		}
	})
	return m, buf, reg
}

// runManager runs m.Run until the test ends and waits for it to return.
func runManager(t testing.TB, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// serveHTTPS serves m's certificates with an http.Server on a loopback
// port, as the HTTPS listener does, answering "ok" to every request. It
// returns the address.
func serveHTTPS(t testing.TB, m *Manager) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}),
		TLSConfig:         m.TLSConfig(),
		ErrorLog:          m.HandshakeErrorLog(nil),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// peer handshakes with addr offering sni (none if "") and returns the
// leaf the server presented. It does not verify the chain.
func peer(t testing.TB, addr, sni string) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: sni, InsecureSkipVerify: true}) //nolint:gosec // the test inspects what is served
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// eventually polls f every 10ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// servedSerial returns the serial number the server presents for sni.
func servedSerial(t testing.TB, addr, sni string) (*big.Int, error) {
	t.Helper()
	c, err := peer(t, addr, sni)
	if err != nil {
		return nil, err
	}
	return c.SerialNumber, nil
}

// wantSerial is an eventually condition: sni is served want's leaf.
func wantSerial(t testing.TB, addr, sni string, want pair) func() error {
	return func() error {
		got, err := servedSerial(t, addr, sni)
		if err != nil {
			return err
		}
		if got.Cmp(want.leaf.SerialNumber) != 0 {
			return errors.New("served serial " + got.String() + ", want " + want.leaf.SerialNumber.String())
		}
		return nil
	}
}

// containsAll reports whether s has every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// atomicTime is a settable clock for Options.Now.
type atomicTime struct{ ns atomic.Int64 }

func (a *atomicTime) set(t time.Time) { a.ns.Store(t.UnixNano()) }
func (a *atomicTime) get() time.Time  { return time.Unix(0, a.ns.Load()) }
