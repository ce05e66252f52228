package acme

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fronttier/internal/certs"
)

func TestCheckKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: nil, want: []string{KeyECDSA}},
		{in: []string{}, want: []string{KeyECDSA}},
		{in: []string{KeyRSA}, want: []string{KeyRSA}},
		{in: []string{KeyRSA, KeyECDSA}, want: []string{KeyRSA, KeyECDSA}},
		{in: []string{"ed25519"}, wantErr: `"ed25519" is not one of`},
		{in: []string{KeyECDSA, KeyECDSA}, wantErr: "listed twice"},
	}
	for _, tt := range tests {
		got, err := checkKeyTypes(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("checkKeyTypes(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || !slices.Equal(got, tt.want)):
			t.Errorf("checkKeyTypes(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := New(Options{CacheDir: t.TempDir(), Installer: newFakeInstaller(), KeyTypes: []string{"dsa"}}); err == nil {
		t.Error("New accepted key type dsa")
	}
}

func TestUnitKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ domain, keyType, key string }{
		{"a.example.test", KeyECDSA, "a.example.test"},
		{"a.example.test", KeyRSA, "a.example.test+rsa"},
	} {
		if got := unitKey(tt.domain, tt.keyType); got != tt.key {
			t.Errorf("unitKey(%s, %s) = %s, want %s", tt.domain, tt.keyType, got, tt.key)
		}
		if got := unitDomain(tt.key); got != tt.domain {
			t.Errorf("unitDomain(%s) = %s", tt.key, got)
		}
	}
	k, err := generateKey(KeyRSA)
	if err != nil || certs.KeyType(k.Public()) != KeyRSA {
		t.Errorf("generateKey(rsa): %T, %v", k, err)
	}
	if k, err := generateKey(KeyECDSA); err != nil || certs.KeyType(k.Public()) != KeyECDSA {
		t.Errorf("generateKey(ecdsa): %T, %v", k, err)
	}
}

// putsOfType returns the certificates Put for domain with keyType keys.
func putsOfType(events []event, domain, keyType string) []*tls.Certificate {
	return slices.DeleteFunc(puts(events, domain), func(c *tls.Certificate) bool { return certs.KeyType(c.Leaf.PublicKey) != keyType })
}

// lastStatusOf returns the last status set for domain's keyType.
func lastStatusOf(events []event, domain, keyType string) string {
	for i := len(events) - 1; i >= 0; i-- {
		if e := events[i]; e.domain == domain && e.status != "" && (e.keyType == keyType || e.keyType == "") {
			return e.status
		}
	}
	return ""
}

// bothValid is a waitFor condition: domain has an ECDSA and an RSA
// certificate put, more than before of each, and both statuses valid.
func bothValid(domain string, before int) func([]event) bool {
	return func(ev []event) bool {
		return len(putsOfType(ev, domain, KeyECDSA)) > before && len(putsOfType(ev, domain, KeyRSA)) > before &&
			lastStatusOf(ev, domain, KeyECDSA) == StatusValid && lastStatusOf(ev, domain, KeyRSA) == StatusValid
	}
}

// TestKeyTypesIssueRenewAndCache: with KeyTypes ECDSA and RSA, Pebble
// issues one certificate of each, each reported with its key type; the
// ECDSA one is cached where it always was and the RSA one beside it; Renew
// renews both; a restart with the CA gone serves both from the cache, and
// a cached certificate of the wrong key type is not served.
func TestKeyTypesIssueRenewAndCache(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{})
	tm := newTestManager(t, env, func(o *Options) { o.KeyTypes = []string{KeyECDSA, KeyRSA} })
	const name = "both.example.test"
	tm.Sync([]string{name})
	if got := len(tm.domains); got != 2 {
		t.Fatalf("%d units for one domain with two key types, want 2", got)
	}
	stop := tm.run(t)
	events := tm.inst.waitFor(t, "an ECDSA and an RSA certificate", bothValid(name, 0))
	for _, kt := range []string{KeyECDSA, KeyRSA} {
		c := putsOfType(events, name, kt)[0]
		if err := c.Leaf.VerifyHostname(name); err != nil {
			t.Errorf("%s certificate: %v", kt, err)
		}
	}
	if rsa := putsOfType(events, name, KeyRSA)[0]; rsa.Leaf.PublicKeyAlgorithm.String() != "RSA" || len(rsa.Leaf.Signature) == 0 {
		t.Errorf("RSA certificate %v", rsa.Leaf.PublicKeyAlgorithm)
	}
	dir := filepath.Join(tm.cacheDir, "certificates", safeName(strings.TrimPrefix(env.DirectoryURL, "https://")), name)
	for _, f := range []string{name + ".crt", name + ".key", name + ".json", name + "+rsa.crt", name + "+rsa.key", name + "+rsa.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("cache: %v", err)
		}
	}

	// Renew orders both again.
	if err := tm.Renew(name); err != nil {
		t.Fatal(err)
	}
	events = tm.inst.waitFor(t, "both renewed", bothValid(name, 1))
	ecSerials := serialsOf(putsOfType(events, name, KeyECDSA))
	rsaSerials := serialsOf(putsOfType(events, name, KeyRSA))
	if len(ecSerials) != 2 || len(rsaSerials) != 2 {
		t.Errorf("serials after Renew: ecdsa %v, rsa %v; want two distinct of each", ecSerials, rsaSerials)
	}

	// Restart with the CA gone: both from the cache, at Sync.
	stop()
	env.pebble.stop()
	restart := func(t *testing.T) *testManager {
		tm2 := newTestManager(t, nil, func(o *Options) {
			o.DirectoryURL, o.CARoot, o.CacheDir = env.DirectoryURL, env.CARoot, tm.cacheDir
			o.KeyTypes = []string{KeyECDSA, KeyRSA}
		})
		tm2.Sync([]string{name})
		return tm2
	}
	ev2 := restart(t).inst.snapshot()
	if got := serialsOf(putsOfType(ev2, name, KeyECDSA)); !slices.Equal(got, ecSerials[1:]) {
		t.Errorf("after the restart ECDSA serials %v, want the cached %v", got, ecSerials[1:])
	}
	if got := serialsOf(putsOfType(ev2, name, KeyRSA)); !slices.Equal(got, rsaSerials[1:]) {
		t.Errorf("after the restart RSA serials %v, want the cached %v", got, rsaSerials[1:])
	}

	// An ECDSA certificate filed as the RSA one is not served as RSA.
	fs, err := newFileStore(tm.cacheDir, env.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	writeCert(t, fs, unitKey(name, KeyRSA), name, time.Now().Add(24*time.Hour))
	tm3 := restart(t)
	if got := len(putsOfType(tm3.inst.snapshot(), name, KeyECDSA)); got != 1 {
		t.Errorf("%d ECDSA certificates put from the cache, want 1 (the misfiled one must not be)", got)
	}
	if got := lastStatusOf(tm3.inst.snapshot(), name, KeyRSA); got != StatusPending {
		t.Errorf("RSA status %q with a misfiled cache, want pending", got)
	}
	if !strings.Contains(tm3.logs.String(), "has an ecdsa key, not rsa") {
		t.Errorf("no log of the misfiled certificate:\n%s", tm3.logs)
	}
}

// serialsOf returns the distinct serials of cs, in order.
func serialsOf(cs []*tls.Certificate) []string {
	var s []string
	for _, c := range cs {
		if serial := c.Leaf.SerialNumber.Text(16); !slices.Contains(s, serial) {
			s = append(s, serial)
		}
	}
	return s
}

// TestFleetKeyTypes: in a fleet with both key types, a domain's ECDSA and
// RSA certificates are ordered once each, stored under <domain> and
// <domain>+rsa, and installed by every node.
func TestFleetKeyTypes(t *testing.T) {
	t.Parallel()
	fx := startFleet(t, "a", "b")
	a, b := fx.nodes[0], fx.nodes[1]
	const name = "fleetboth.example.test"
	fx.env.setA(t, name, a.ip)
	for _, n := range fx.nodes {
		n.keyTypes = []string{KeyECDSA, KeyRSA}
		n.Sync([]string{name})
		n.run(t)
	}
	var want [2][]string
	for i, n := range []*fleetNode{a, b} {
		ev := n.inst.waitFor(t, "node "+n.name+" serving both", bothValid(name, 0))
		want[i] = []string{serialsOf(putsOfType(ev, name, KeyECDSA))[0], serialsOf(putsOfType(ev, name, KeyRSA))[0]}
	}
	if !slices.Equal(want[0], want[1]) {
		t.Errorf("nodes serve different certificates: a %v, b %v", want[0], want[1])
	}
	if got := fx.orders.Load(); got != 2 {
		t.Errorf("the fleet sent %d orders for one domain with two key types, want 2", got)
	}
	ca := safeName(strings.TrimPrefix(fx.env.DirectoryURL, "https://"))
	for _, key := range []string{name, name + "+rsa"} {
		if !hasKey(t, a.cli, fleetPrefix+"/acme/certificates/"+ca+"/"+key) {
			t.Errorf("etcd has no certificate under %s", key)
		}
	}
}

// TestNameSlot: the units of one name share one slot, so that one order
// at a time runs per name; waiting for it ends with the context.
func TestNameSlot(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, func(o *Options) { o.KeyTypes = []string{KeyRSA, KeyECDSA} })
	tm.Sync([]string{"slot.example.test", "other.example.test"})
	ec, rs := tm.domainState("slot.example.test"), tm.domainState("slot.example.test+rsa")
	if ec == nil || rs == nil || ec.slot != rs.slot || ec.slot == tm.domainState("other.example.test").slot {
		t.Fatalf("units %+v and %+v: want one slot per name", ec, rs)
	}
	give, err := ec.slot.take(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := rs.slot.take(ctx); err == nil {
		t.Error("took a slot that is taken")
	}
	give()
	if give2, err := rs.slot.take(t.Context()); err != nil {
		t.Errorf("slot not given back: %v", err)
	} else {
		give2()
	}
}
