package acme

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	tu "fronttier/internal/testutil"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/testutil/etcdtest"
)

// fleetPrefix is the etcd prefix the fleet tests share their state under.
const fleetPrefix = "/fleet-test"

// fleetFixture is a fleet of Managers, one per node, sharing one etcd
// prefix and one Pebble. Pebble's validations go to one port, HTTP-01 and
// TLS-ALPN-01 each, so every node listens on those ports of a loopback
// address of its own (127.0.0.2, .3, ...): the address Pebble's DNS gives
// for a name decides which node the CA reaches.
type fleetFixture struct {
	etcd  *etcdtest.Cluster
	env   *pebbleEnv
	nodes []*fleetNode
	// orders counts the newOrder requests that reached Pebble, from any
	// node: one per certificate when the fleet orders once.
	orders atomic.Int64
}

// fleetNode is one node: its Manager with its own etcd client, installer
// and challenge responders.
type fleetNode struct {
	*testManager
	name string
	ip   string
	cli  *clientv3.Client
	tap  *orderTap
	// Validations this node's responders answered.
	httpHits, alpnHits atomic.Int64
}

// startFleet starts etcd, the nodes' responders, Pebble, and one Manager
// per name (not running), the first on 127.0.0.2.
func startFleet(t *testing.T, names ...string) *fleetFixture {
	t.Helper()
	fx := &fleetFixture{etcd: etcdtest.Start(t, 1)}
	ips := make([]string, len(names))
	for i := range names {
		ips[i] = "127.0.0." + strconv.Itoa(i+2)
	}
	httpLns, httpPort := tu.ListenAll(t, ips)
	tlsLns, tlsPort := tu.ListenAll(t, ips)
	fx.env = startPebble(t, pebbleOptions{httpPort: httpPort, tlsPort: tlsPort})
	for i, name := range names {
		n := &fleetNode{name: name, ip: ips[i], cli: fx.etcd.Client(t)}
		n.testManager = newTestManager(t, fx.env, func(o *Options) {
			o.Fleet = &Fleet{Client: n.cli, Prefix: fleetPrefix, Node: name, Timeout: 5 * time.Second}
		})
		n.tap = &orderTap{next: n.gate.next, gate: n.gate, orders: &fx.orders, held: make(chan struct{}, 16)}
		n.gate.next = n.tap
		n.serve(t, httpLns[i], tlsLns[i])
		fx.nodes = append(fx.nodes, n)
	}
	return fx
}

// serve answers Pebble's validations on httpLn (HTTP-01) and tlsLn
// (TLS-ALPN-01) through n's Manager, as the proxy's listeners do, and
// counts those answered.
func (n *fleetNode) serve(t *testing.T, httpLn, tlsLn net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		n.HTTPHandler().ServeHTTP(rec, r)
		if rec.status == 0 || rec.status == http.StatusOK {
			n.httpHits.Add(1)
		}
	}))
	srv.Listener.Close()
	srv.Listener = httpLn
	srv.Start()
	t.Cleanup(srv.Close)

	ln := tls.NewListener(tlsLn, &tls.Config{
		NextProtos: []string{"http/1.1", ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := challengeCert(n.Manager, hello)
			if cert != nil {
				n.alpnHits.Add(1)
			}
			return cert, err
		},
	})
	serveHandshakes(t, ln)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// hits is how many validations n answered.
func (n *fleetNode) hits() int64 { return n.httpHits.Load() + n.alpnHits.Load() }

// busy is how many times n found another node ordering.
func (n *fleetNode) busy() float64 { return testutil.ToFloat64(n.metrics.lockBusy) }

// orphan ends n's etcd session as a crash does: its lease is no longer
// kept alive, and expires after its TTL.
func (n *fleetNode) orphan(t *testing.T) {
	t.Helper()
	n.fleet.lock <- struct{}{}
	defer n.fleet.release()
	if n.fleet.sess == nil {
		t.Fatalf("node %s has no session", n.name)
	}
	n.fleet.sess.Orphan()
}

// waitCert waits until n serves a certificate for name other than those
// in not, and returns its serial.
func (n *fleetNode) waitCert(t *testing.T, name string, not ...string) string {
	t.Helper()
	var serial string
	n.inst.waitFor(t, "node "+n.name+" serving a new certificate for "+name, func(ev []event) bool {
		s := serials(ev, name)
		for i := len(s) - 1; i >= 0; i-- {
			if !slices.Contains(not, s[i]) {
				serial = s[i]
				return lastStatus(ev, name).status == StatusValid
			}
		}
		return false
	})
	return serial
}

// waitUntil polls cond until it holds, failing after waitTimeout. It is
// for state that announces no change (metrics, etcd keys).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// orderTap sits between a Manager's orderGate and the network: it counts
// the newOrder requests that reach the CA and, while holding, keeps them
// from it until released (or their context ends), reporting each on held.
type orderTap struct {
	next   http.RoundTripper
	gate   *orderGate
	orders *atomic.Int64
	held   chan struct{}

	mu   sync.Mutex
	hold chan struct{} // non-nil while holding; closed to release
}

// holdOrders makes the tap hold newOrder requests from now on.
func (p *orderTap) holdOrders() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = make(chan struct{})
}

// release lets the requests held go, and stops holding.
func (p *orderTap) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
}

// waitHeld waits until a request is held.
func (p *orderTap) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-p.held:
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an order to be held")
	}
}

func (p *orderTap) RoundTrip(req *http.Request) (*http.Response, error) {
	u := p.gate.newOrder.Load()
	if u == nil || req.Method != http.MethodPost || req.URL.String() != *u {
		return p.next.RoundTrip(req)
	}
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	if hold != nil {
		select {
		case p.held <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-req.Context().Done():
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, req.Context().Err()
		}
	}
	p.orders.Add(1)
	return p.next.RoundTrip(req)
}
