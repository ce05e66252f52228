// Package testutil holds helpers shared by tests of several packages. It is
// imported only from _test.go files.
package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"fronttier/internal/config"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// SelfSigned returns a self-signed ECDSA P-256 server certificate valid for
// an hour around now, for names (DNS names or IP addresses).
func SelfSigned(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key := ECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: Serial(t),
		Subject:      pkix.Name{CommonName: "fronttier test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a log destination
// tests read while the code under test writes.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Fetch GETs url with c into out (discarded when nil) and fails on a
// status other than 2xx: for polling a test server until it is up.
func Fetch(ctx context.Context, c *http.Client, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if out == nil {
		out = io.Discard
	}
	_, err = io.Copy(out, resp.Body)
	return err
}

// ECKey returns a new ECDSA P-256 key.
func ECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Serial returns a random positive certificate serial number.
func Serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// Persister stands in for the configuration file behind a state.Store: it
// keeps the last configuration saved, counts the saves, and fails them
// with the error set by SetErr.
type Persister struct {
	mu    sync.Mutex
	err   error
	calls int
	last  *config.Config
}

// Save records a copy of c, or fails with the error set.
func (p *Persister) Save(c *config.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return p.err
	}
	p.last = c.Clone()
	return nil
}

// SetErr makes the following saves fail with err (nil: succeed).
func (p *Persister) SetErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// Count returns how many saves were asked for, failed ones included.
func (p *Persister) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// Last returns the last configuration saved, or nil.
func (p *Persister) Last() *config.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}
