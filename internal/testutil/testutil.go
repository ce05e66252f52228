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
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"fronttier/internal/config"
	"fronttier/internal/store"
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

// Persister stands in for the store behind a state.Store (a
// store.Store): it keeps the last configuration written, counts the
// writes, and fails them with the error set by SetErr. It never reports
// a stale revision nor a change made elsewhere.
type Persister struct {
	mu    sync.Mutex
	err   error
	calls int
	last  *config.Config
	rev   store.Revision
}

var _ store.Store = (*Persister)(nil)

// CompareAndSwap records a copy of next, or fails with the error set.
func (p *Persister) CompareAndSwap(_ context.Context, _ store.Snapshot, next *config.Config) (store.Revision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return 0, p.err
	}
	p.last = next.Clone()
	p.rev++
	return p.rev, nil
}

// Load returns the last configuration written, or store.ErrEmpty.
func (p *Persister) Load(context.Context) (store.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return store.Snapshot{}, store.ErrEmpty
	}
	return store.Snapshot{Config: p.last, Rev: p.rev}, nil
}

// Watch reports nothing: nobody else writes.
func (p *Persister) Watch(ctx context.Context, _ store.Revision) <-chan store.Update {
	ch := make(chan store.Update)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch
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

// ListenAll binds one port, the same on every address of ips (loopback
// addresses standing for a fleet's nodes), and returns the listeners.
func ListenAll(t testing.TB, ips []string) ([]net.Listener, int) {
	t.Helper()
	for range 10 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns, port
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return nil, 0
}
