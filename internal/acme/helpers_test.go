package acme

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/clock"
	"fronttier/internal/testutil"
)

// waitTimeout bounds every wait for the manager to do something.
const waitTimeout = 30 * time.Second

// event is one call to fakeInstaller.
type event struct {
	domain  string
	keyType string           // set for SetStatus
	cert    *tls.Certificate // set for Put
	status  string           // set for SetStatus
	err     error
}

// fakeInstaller records every call; waiters are woken on each one.
type fakeInstaller struct {
	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced on every event
}

var _ Installer = (*fakeInstaller)(nil)

func newFakeInstaller() *fakeInstaller {
	return &fakeInstaller{changed: make(chan struct{})}
}

func (f *fakeInstaller) record(e event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeInstaller) Put(domain string, cert *tls.Certificate) {
	f.record(event{domain: domain, cert: cert})
}

func (f *fakeInstaller) SetStatus(domain, keyType, status string, err error) {
	f.record(event{domain: domain, keyType: keyType, status: status, err: err})
}

// snapshot returns the events so far.
func (f *fakeInstaller) snapshot() []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// waitFor waits until cond holds for the events, failing after waitTimeout.
func (f *fakeInstaller) waitFor(t *testing.T, what string, cond func([]event) bool) []event {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		events, changed := slices.Clone(f.events), f.changed
		f.mu.Unlock()
		if cond(events) {
			return events
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s; events: %s", what, describe(events))
		}
	}
}

// puts returns the certificates Put for domain, in order.
func puts(events []event, domain string) []*tls.Certificate {
	var certs []*tls.Certificate
	for _, e := range events {
		if e.domain == domain && e.cert != nil {
			certs = append(certs, e.cert)
		}
	}
	return certs
}

// statuses returns the statuses set for domain, in order.
func statuses(events []event, domain string) []string {
	var s []string
	for _, e := range events {
		if e.domain == domain && e.status != "" {
			s = append(s, e.status)
		}
	}
	return s
}

// lastStatus returns the last status event for domain.
func lastStatus(events []event, domain string) event {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].domain == domain && events[i].status != "" {
			return events[i]
		}
	}
	return event{}
}

// serials returns the distinct serial numbers Put for domain, in order.
func serials(events []event, domain string) []string {
	var s []string
	for _, c := range puts(events, domain) {
		serial := c.Leaf.SerialNumber.Text(16)
		if !slices.Contains(s, serial) {
			s = append(s, serial)
		}
	}
	return s
}

func describe(events []event) string {
	var b []byte
	for _, e := range events {
		b = append(b, "\n  "...)
		b = append(b, e.domain...)
		switch {
		case e.cert != nil:
			b = append(b, " put serial="...)
			b = append(b, e.cert.Leaf.SerialNumber.Text(16)...)
		default:
			b = append(b, " status="...)
			b = append(b, e.status...)
			if e.err != nil {
				b = append(b, " err="...)
				b = append(b, e.err.Error()...)
			}
		}
	}
	return string(b)
}

// testManager is a Manager with its installer and captured log.
type testManager struct {
	*Manager
	inst     *fakeInstaller
	logs     *testutil.SyncBuffer
	cacheDir string
}

// newTestManager creates a Manager using env (nil for none: the directory
// then refuses connections) with fast retries; edit adjusts the options.
func newTestManager(t *testing.T, env *pebbleEnv, edit func(*Options)) *testManager {
	t.Helper()
	tm := &testManager{inst: newFakeInstaller(), logs: &testutil.SyncBuffer{}, cacheDir: filepath.Join(t.TempDir(), "cache")}
	o := Options{
		Email:        "admin@example.test",
		DirectoryURL: "https://127.0.0.1:1/dir",
		CacheDir:     tm.cacheDir,
		Installer:    tm.inst,
		Log:          slog.New(slog.NewTextHandler(tm.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if env != nil {
		o.DirectoryURL, o.CARoot = env.DirectoryURL, env.CARoot
	}
	if edit != nil {
		edit(&o)
	}
	tm.cacheDir = o.CacheDir
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	m.retryBase, m.retryMax = 20*time.Millisecond, 200*time.Millisecond
	m.ariTimeout = 5 * time.Second
	tm.Manager = m
	if env != nil {
		env.attach(m)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ACME_TEST_LOG") != "" {
			t.Logf("manager log:\n%s", tm.logs.String())
		}
	})
	return tm
}

// run runs tm until the returned stop is called or the test ends; stop
// returns once Run has returned.
func (tm *testManager) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tm.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// domainState returns the managed domain's state, nil if unmanaged.
func (tm *testManager) domainState(name string) *domain {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.domains[name]
}

// setClock makes c the clock of tm's schedule and order rate limit; call
// it before Sync.
func (tm *testManager) setClock(c clock.Clock) {
	tm.clock = c
	tm.limit.clock = c
}

// refuseOrders makes the CA refuse tm's new orders (as it refuses an
// identifier, without validating anything) while the returned flag is
// true. Tests use it rather than a failing validation, because Pebble
// reuses a valid authorization now and then (PEBBLE_AUTHZREUSE=0 still
// leaves 1 in 100) and a renewal meant to fail would then succeed. Call it
// before Run.
func (tm *testManager) refuseOrders() *atomic.Bool {
	r := &orderRefuser{next: tm.gate.next, gate: tm.gate}
	tm.gate.next = r
	return &r.refuse
}

// orderRefuser is refuseOrders' transport, between orderGate and the
// network.
type orderRefuser struct {
	next   http.RoundTripper
	gate   *orderGate
	refuse atomic.Bool
}

func (r *orderRefuser) RoundTrip(req *http.Request) (*http.Response, error) {
	u := r.gate.newOrder.Load()
	if !r.refuse.Load() || u == nil || req.Method != http.MethodPost || req.URL.String() != *u {
		return r.next.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	body := `{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"orders refused by the test"}`
	return &http.Response{
		Status:        "403 Forbidden",
		StatusCode:    http.StatusForbidden,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/problem+json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// certSaver is where writeCert puts a certificate.
type certSaver interface {
	saveCertificate(domain string, chainPEM, keyPEM []byte, meta certMeta) error
}

// writeCert saves a self-signed certificate for name, valid until
// notAfter, through s under domain dir (name itself, unless a test files
// a certificate under a domain it does not match), as if it had been
// issued.
func writeCert(t *testing.T, s certSaver, dir, name string, notAfter time.Time) *certificate {
	t.Helper()
	chainPEM, keyPEM := selfSignedPEM(t, name, notAfter)
	c, err := parseCertificate(chainPEM, keyPEM, certMeta{})
	if err != nil {
		t.Fatal(err)
	}
	c.meta = certMeta{Domain: dir, Serial: c.serial(), NotAfter: notAfter}
	if err := s.saveCertificate(dir, chainPEM, keyPEM, c.meta); err != nil {
		t.Fatal(err)
	}
	return c
}
