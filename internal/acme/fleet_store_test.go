package acme

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"

	"fronttier/internal/testutil/etcdtest"
)

// Fleet tests against a real etcd alone (no CA).

// newFleetManager is a Manager in the fleet under fleetPrefix on etcd,
// with its own client, and a CA that cannot be reached.
func newFleetManager(t *testing.T, etcd *etcdtest.Cluster, node string) *testManager {
	t.Helper()
	cli := etcd.Client(t)
	return newTestManager(t, nil, func(o *Options) {
		o.Fleet = &Fleet{Client: cli, Prefix: fleetPrefix, Node: node, Timeout: 5 * time.Second}
	})
}

// waitRunning waits until the Run of each of tms is active.
func waitRunning(t *testing.T, tms ...*testManager) {
	t.Helper()
	for _, tm := range tms {
		waitUntil(t, "Run active", func() bool {
			tm.mu.Lock()
			defer tm.mu.Unlock()
			return tm.running
		})
	}
}

// TestFleetChallengesShared: the answers one node presents are served by
// another, for HTTP-01 and TLS-ALPN-01, until the presenting node cleans
// them up or its session ends.
func TestFleetChallengesShared(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	a, b := newFleetManager(t, etcd, "a"), newFleetManager(t, etcd, "b")
	stopA := a.run(t)
	b.run(t)
	waitRunning(t, a, b)
	ctx := t.Context()
	const domain = "alpn.example.test"
	httpChal := acmeproto.Challenge{Type: acmeproto.ChallengeTypeHTTP01, Token: "tok_http", KeyAuthorization: "tok_http.thumb"}
	alpnChal := acmeproto.Challenge{
		Type:             acmeproto.ChallengeTypeTLSALPN01,
		Identifier:       acmeproto.Identifier{Type: "dns", Value: domain},
		Token:            "tok_alpn",
		KeyAuthorization: "tok_alpn.thumb",
	}
	present := func() {
		t.Helper()
		if err := (http01Solver{a.chal}).Present(ctx, httpChal); err != nil {
			t.Fatal(err)
		}
		if err := (tlsALPN01Solver{a.chal}).Present(ctx, alpnChal); err != nil {
			t.Fatal(err)
		}
	}
	// served reports what b answers: the HTTP-01 body (or "" for 404)
	// and whether its TLS-ALPN-01 certificate proves alpnChal.
	served := func() (string, bool) {
		t.Helper()
		rec := httptest.NewRecorder()
		b.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://a.example.test"+ChallengePath+httpChal.Token, nil))
		body := ""
		if rec.Code == http.StatusOK {
			body = rec.Body.String()
		}
		cert, err := b.ALPN(&tls.ClientHelloInfo{ServerName: domain, SupportedProtos: []string{ALPNProto}})
		if err != nil {
			t.Fatal(err)
		}
		return body, cert != nil && provesKeyAuth(t, cert, domain, alpnChal.KeyAuthorization)
	}

	present()
	if body, alpn := served(); body != httpChal.KeyAuthorization || !alpn {
		t.Errorf("b answers %q and ALPN %v to a's challenges, want %q and true", body, alpn, httpChal.KeyAuthorization)
	}
	if err := (http01Solver{a.chal}).CleanUp(ctx, httpChal); err != nil {
		t.Fatal(err)
	}
	if err := (tlsALPN01Solver{a.chal}).CleanUp(ctx, alpnChal); err != nil {
		t.Fatal(err)
	}
	if body, alpn := served(); body != "" || alpn {
		t.Errorf("after a's clean-up b answers %q and ALPN %v, want nothing", body, alpn)
	}

	// a stops (or dies): its session's lease takes its answers with it.
	present()
	stopA()
	if body, alpn := served(); body != "" || alpn {
		t.Errorf("after a stopped b answers %q and ALPN %v, want nothing", body, alpn)
	}
}

// provesKeyAuth reports whether cert is a TLS-ALPN-01 certificate for
// domain carrying the digest of keyAuth (RFC 8737 §3).
func provesKeyAuth(t *testing.T, cert *tls.Certificate, domain, keyAuth string) bool {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(keyAuth))
	want, _ := asn1.Marshal(sum[:])
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}) {
			return ext.Critical && string(ext.Value) == string(want) && leaf.VerifyHostname(domain) == nil
		}
	}
	return false
}

// TestEtcdStore: the fleet's account and certificates round-trip through
// etcd between nodes, the first account registered stays the fleet's,
// metadata updates only the certificate they describe, a node's cached
// account and certificate become the fleet's when etcd has none, and a
// node reads its local copy while etcd is away.
func TestEtcdStore(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	const dir = "https://ca.example.test/dir"
	newStore := func(cacheDir string) *etcdStore {
		st, err := newEtcdStore(etcd.Client(t), fleetPrefix, cacheDir, dir, 2*time.Second, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := newStore(filepath.Join(t.TempDir(), "a")), newStore(filepath.Join(t.TempDir(), "b"))

	t.Run("account", func(t *testing.T) {
		if _, err := a.loadAccount("x@example.test"); !errors.Is(err, errNoAccount) {
			t.Fatalf("loadAccount on an empty fleet = %v, want errNoAccount", err)
		}
		mine := acmeproto.Account{PrivateKey: newKey(t), Status: acmeproto.StatusValid, Location: "https://ca.example.test/acct/1"}
		if err := a.saveAccount("x@example.test", mine); err != nil {
			t.Fatal(err)
		}
		got, err := b.loadAccount("X@example.test")
		if err != nil || !samePublicKey(got, mine) || got.Location != mine.Location {
			t.Fatalf("b reads %+v, %v; want a's account", got, err)
		}
		theirs := acmeproto.Account{PrivateKey: newKey(t), Status: acmeproto.StatusValid}
		if err := b.saveAccount("x@example.test", theirs); !errors.Is(err, errAccountTaken) {
			t.Errorf("a second account saved: %v, want errAccountTaken", err)
		}
		mine.Location = "https://ca.example.test/acct/1b"
		if err := b.saveAccount("x@example.test", mine); err != nil {
			t.Errorf("saving the fleet's account again: %v", err)
		}
	})

	t.Run("account imported from a node's cache", func(t *testing.T) {
		c := newStore(filepath.Join(t.TempDir(), "c"))
		cached := acmeproto.Account{PrivateKey: newKey(t), Status: acmeproto.StatusValid, Location: "https://ca.example.test/acct/2"}
		if err := c.local.saveAccount("y@example.test", cached); err != nil {
			t.Fatal(err)
		}
		if got, err := c.loadAccount("y@example.test"); err != nil || !samePublicKey(got, cached) {
			t.Fatalf("c reads %+v, %v; want its cached account", got, err)
		}
		if got, err := a.loadAccount("y@example.test"); err != nil || !samePublicKey(got, cached) {
			t.Errorf("a reads %+v, %v; want c's imported account", got, err)
		}
	})

	const name = "store.example.test"
	first := writeCert(t, a, name, name, time.Now().Add(60*24*time.Hour))
	t.Run("certificate", func(t *testing.T) {
		got, err := b.loadCertificate(name)
		if err != nil || got.serial() != first.serial() {
			t.Fatalf("b reads %v, %v; want serial %s", got, err, first.serial())
		}
		if s := b.local.cachedSerial(name); s != first.serial() {
			t.Errorf("b's local copy has serial %q, want %s", s, first.serial())
		}
		stale := first.meta
		stale.Serial = "0BSOLETE"
		stale.URL = "https://ca.example.test/stale"
		if err := b.saveMeta(name, stale); err != nil {
			t.Fatal(err)
		}
		fresh := first.meta
		fresh.URL = "https://ca.example.test/fresh"
		if err := b.saveMeta(name, fresh); err != nil {
			t.Fatal(err)
		}
		got, _, err = a.latest(t.Context(), name)
		if err != nil || got.meta.URL != fresh.URL {
			t.Errorf("metadata in etcd: %+v, %v; want URL %s only", got.meta, err, fresh.URL)
		}
	})

	t.Run("failed attempts end with a certificate", func(t *testing.T) {
		att := attemptRecord{Failures: 2, RetryAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), Node: "a", Error: "boom"}
		if err := a.recordFailure(name, att); err != nil {
			t.Fatal(err)
		}
		if _, got, err := b.latest(t.Context(), name); err != nil || got != att {
			t.Fatalf("b reads attempts %+v, %v; want %+v", got, err, att)
		}
		writeCert(t, a, name, name, time.Now().Add(61*24*time.Hour))
		if _, got, err := b.latest(t.Context(), name); err != nil || got.Failures != 0 {
			t.Errorf("attempts after a new certificate: %+v, %v; want none", got, err)
		}
	})

	t.Run("certificate imported from a node's cache", func(t *testing.T) {
		const other = "imported.example.test"
		c := newStore(filepath.Join(t.TempDir(), "c"))
		cached := writeCert(t, c.local, other, other, time.Now().Add(30*24*time.Hour))
		if got, err := c.loadCertificate(other); err != nil || got.serial() != cached.serial() {
			t.Fatalf("c reads %v, %v; want its cached certificate", got, err)
		}
		if got, err := a.loadCertificate(other); err != nil || got.serial() != cached.serial() {
			t.Errorf("a reads %v, %v; want c's imported certificate", got, err)
		}
	})

	t.Run("etcd away", func(t *testing.T) {
		served, err := b.loadCertificate(name)
		if err != nil {
			t.Fatal(err)
		}
		etcd.StopAll()
		got, err := b.loadCertificate(name)
		if err != nil || got.serial() != served.serial() {
			t.Fatalf("with etcd away b reads %v, %v; want its local copy", got, err)
		}
		if !b.down.Load() {
			t.Error("b does not know etcd is away")
		}
		if _, err := b.loadCertificate(name); err != nil {
			t.Errorf("second read with etcd away: %v", err)
		}
		etcd.StartAll()
		if _, _, err := b.latest(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		if b.down.Load() {
			t.Error("b still thinks etcd is away after reaching it")
		}
	})
}

// Compile-time check that both stores take certificates the same way.
var _ = []certSaver{(*fileStore)(nil), (*etcdStore)(nil)}

// selfSignedPEM returns a self-signed certificate for name, valid until
// notAfter, and its key, in PEM.
func selfSignedPEM(t *testing.T, name string, notAfter time.Time) (chainPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notAfter.Add(-90 * 24 * time.Hour),
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = marshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestFleetClaimOrder: with the order lock taken, a node reads the
// fleet's state again before ordering: it installs a certificate another
// node renewed meanwhile instead of ordering, waits for the fleet's retry
// after another node's failure (unless forced), and orders only when a
// certificate is still due, holding the lock against the other nodes
// until it releases it.
func TestFleetClaimOrder(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	a, b := newFleetManager(t, etcd, "a"), newFleetManager(t, etcd, "b")
	a.run(t)
	b.run(t)
	waitRunning(t, a, b)
	ctx := t.Context()
	log := testLogger(t)
	// claim runs b's claim for a domain b serves cur for; the domain is
	// not managed (given to Sync), so that only the claim can install.
	claim := func(name string, cur *certificate, forced bool) (*domain, func(), time.Time) {
		t.Helper()
		d := newDomain(name, KeyECDSA, newNameSlot())
		d.cert.Store(cur)
		unlock, _, next, err := b.claimOrder(ctx, d, cur, forced, log)
		if err != nil {
			t.Fatal(err)
		}
		return d, unlock, next
	}

	t.Run("renewed meanwhile", func(t *testing.T) {
		const name = "renewed.example.test"
		old := writeCert(t, a.store, name, name, time.Now().Add(10*24*time.Hour))
		if !time.Now().After(old.renewAt(b.renewBefore)) {
			t.Fatal("the old certificate is not due")
		}
		renewed := writeCert(t, a.store, name, name, time.Now().Add(80*24*time.Hour))
		d, unlock, next := claim(name, old, false)
		if unlock != nil {
			unlock()
			t.Fatal("b orders a certificate another node renewed")
		}
		if got := d.cert.Load(); got.serial() != renewed.serial() {
			t.Errorf("b serves %s, want the renewed %s", got.serial(), renewed.serial())
		}
		if !next.After(time.Now().Add(time.Hour)) {
			t.Errorf("next check at %v, want the renewed certificate's", next)
		}
	})

	t.Run("due: b orders and holds the lock", func(t *testing.T) {
		const name = "due.example.test"
		cur := writeCert(t, a.store, name, name, time.Now().Add(10*24*time.Hour))
		_, unlock, _ := claim(name, cur, false)
		if unlock == nil {
			t.Fatal("b does not order a due certificate")
		}
		if _, err := a.fleet.tryLock(ctx, name); !errors.Is(err, errOrderLocked) {
			t.Errorf("a takes the lock b holds: %v", err)
		}
		unlock()
		release, err := a.fleet.tryLock(ctx, name)
		if err != nil {
			t.Fatalf("a cannot take the lock b released: %v", err)
		}
		release()
	})

	t.Run("the fleet's retry not due", func(t *testing.T) {
		const name = "failing.example.test"
		cur := writeCert(t, a.store, name, name, time.Now().Add(10*24*time.Hour))
		retry := time.Now().Add(time.Hour).UTC()
		if err := a.fleet.store.recordFailure(name, attemptRecord{Failures: 3, RetryAt: retry, Node: "a", Error: "boom"}); err != nil {
			t.Fatal(err)
		}
		d, unlock, next := claim(name, cur, false)
		if unlock != nil {
			unlock()
			t.Fatal("b orders before the fleet's retry")
		}
		if !next.Equal(retry) || d.failures != 3 {
			t.Errorf("next %v after %d failures, want %v after 3", next, d.failures, retry)
		}
		st := lastStatus(b.inst.snapshot(), name)
		if st.status != StatusRenewing || st.err == nil || !strings.Contains(st.err.Error(), "on node a, failed: boom") {
			t.Errorf("status %q, %v; want renewing with a's error", st.status, st.err)
		}
		_, unlock, _ = claim(name, cur, true)
		if unlock == nil {
			t.Fatal("a forced check does not order")
		}
		unlock()
	})
}
