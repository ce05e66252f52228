package acme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fleet tests against a real Pebble and a real etcd: several Managers
// ("nodes") sharing one etcd prefix, each with its own installer and its
// own challenge responders on a loopback address of its own (see
// fleetFixture).

// TestFleetOrdersOnce: the node that takes a domain's order lock orders
// its certificate while the others find the lock taken and install the
// certificate it obtained; the CA's validation reaches a node that did
// not order, which answers from etcd; a forced renewal on one node is
// ordered once and installed by every node.
func TestFleetOrdersOnce(t *testing.T) {
	t.Parallel()
	fx := startFleet(t, "b", "a", "c")
	b, a, c := fx.nodes[0], fx.nodes[1], fx.nodes[2]
	const name = "once.example.test"
	fx.env.setA(t, name, b.ip) // the CA reaches b only

	// a orders first, and is held at the CA's door until b and c have
	// found the domain's lock taken.
	a.tap.holdOrders()
	a.Sync([]string{name})
	a.run(t)
	a.tap.waitHeld(t)
	for _, n := range []*fleetNode{b, c} {
		n.Sync([]string{name})
		n.run(t)
	}
	waitUntil(t, "b and c finding a ordering", func() bool { return b.busy() >= 1 && c.busy() >= 1 })
	a.tap.release()

	first := a.waitCert(t, name)
	for _, n := range []*fleetNode{b, c} {
		if got := n.waitCert(t, name); got != first {
			t.Errorf("node %s serves serial %s, want a's %s", n.name, got, first)
		}
	}
	if got := fx.orders.Load(); got != 1 {
		t.Errorf("the fleet sent %d orders for one domain, want 1", got)
	}
	if b.hits() == 0 || a.hits() != 0 {
		t.Errorf("validations answered: a %d, b %d; want b (the CA's address), not a (the orderer)", a.hits(), b.hits())
	}

	t.Run("etcd holds it, disks hold copies of certificates only", func(t *testing.T) {
		ca := safeName(strings.TrimPrefix(fx.env.DirectoryURL, "https://"))
		for _, key := range []string{
			fleetPrefix + "/acme/certificates/" + ca + "/" + name,
			fleetPrefix + "/acme/accounts/" + ca + "/admin@example.test",
		} {
			if !hasKey(t, a.cli, key) {
				t.Errorf("etcd has no %s", key)
			}
		}
		for _, n := range fx.nodes {
			if _, err := os.Stat(filepath.Join(n.cacheDir, "accounts")); !os.IsNotExist(err) {
				t.Errorf("node %s: the account is on disk (%v)", n.name, err)
			}
			if got := n.store.(*etcdStore).local.cachedSerial(name); !strings.EqualFold(got, first) {
				t.Errorf("node %s: local copy has serial %q, want %s", n.name, got, first)
			}
		}
	})

	// A forced renewal on c: one order, every node installs the result.
	if err := c.Renew(name); err != nil {
		t.Fatal(err)
	}
	second := c.waitCert(t, name, first)
	for _, n := range []*fleetNode{a, b} {
		if got := n.waitCert(t, name, first); got != second {
			t.Errorf("node %s serves serial %s after c's renewal, want %s", n.name, got, second)
		}
	}
	if got := fx.orders.Load(); got != 2 {
		t.Errorf("the fleet sent %d orders for one issuance and one renewal, want 2", got)
	}
	if c.hits() != 0 {
		t.Errorf("c, the orderer, answered %d validations; the CA reaches b", c.hits())
	}
}

// TestFleetLockHolderDies: a node that dies while it holds a domain's
// order lock (its session's lease is no longer kept alive) lets another
// node order once its lease expires.
func TestFleetLockHolderDies(t *testing.T) {
	t.Parallel()
	fx := startFleet(t, "b", "a", "c")
	b, a, c := fx.nodes[0], fx.nodes[1], fx.nodes[2]
	const name = "survivor.example.test"
	fx.env.setA(t, name, b.ip)

	a.fleet.ttl = 2 // seconds: how long the fleet waits for a dead node
	a.tap.holdOrders()
	a.Sync([]string{name})
	a.run(t)
	a.tap.waitHeld(t) // a holds the lock, and never reaches the CA
	for _, n := range []*fleetNode{b, c} {
		n.Sync([]string{name})
		n.run(t)
	}
	waitUntil(t, "b and c finding a ordering", func() bool { return b.busy() >= 1 && c.busy() >= 1 })
	a.orphan(t)

	serial := b.waitCert(t, name)
	if got := c.waitCert(t, name); got != serial {
		t.Errorf("c serves serial %s, b %s", got, serial)
	}
	if got := fx.orders.Load(); got != 1 {
		t.Errorf("%d orders reached the CA, want 1 (b's or c's)", got)
	}
}

// hasKey reports whether etcd holds key.
func hasKey(t *testing.T, cli *clientv3.Client, key string) bool {
	t.Helper()
	resp, err := cli.Get(t.Context(), key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count > 0
}
