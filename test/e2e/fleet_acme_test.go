package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/testutil"
	"fronttier/internal/testutil/etcdtest"
)

// TestFleetACME: three fronttier nodes in a fleet with one lets_encrypt
// domain get one certificate from Pebble for the whole fleet, and every
// node serves it over HTTPS. Each node listens on a loopback address of
// its own, on the same two ports (Pebble validates on one HTTP and one
// TLS port), and Pebble's DNS sends the CA to edge-2, while edge-1
// orders: edge-2 answers the challenge from etcd.
func TestFleetACME(t *testing.T) {
	t.Parallel()
	const name = "fleet.example.test"
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	httpPort, tlsPort := freePortOnAll(t, ips), freePortOnAll(t, ips)
	etcd := etcdtest.Start(t, 1)
	pb := startPebble(t, httpPort, tlsPort)
	roots := pb.issuingRoots(t)
	pb.setA(t, name, ips[1])
	le := startBackend(t, "le")

	node := func(i int, hosts []tlsHost) *proxyProc {
		c := tlsConf{
			HTTPAddr:     net.JoinHostPort(ips[i], strconv.Itoa(httpPort)),
			HTTPSAddr:    net.JoinHostPort(ips[i], strconv.Itoa(tlsPort)),
			DirectoryURL: pb.DirectoryURL,
			CARoot:       pb.CARoot,
			Hosts:        hosts,
			Backends:     []backendConf{be("le", le, "le")},
		}
		dir := t.TempDir()
		c.CacheDir = filepath.Join(dir, "acme-cache")
		cluster := fleetConf(t, etcd, "edge-"+strconv.Itoa(i+1), conf{}).Extra
		path := filepath.Join(dir, "config.toml")
		writeFile(t, path, c.String()+cluster)
		p := startProxy(t, path)
		if p.HTTPS == "" {
			t.Fatalf("edge-%d did not log its https address", i+1)
		}
		return p
	}

	// edge-1 seeds the fleet with the domain and takes its order lock;
	// Pebble is paused, so edge-1 holds the lock while edge-2 and edge-3
	// start and find it taken.
	pb.signal(t, syscall.SIGSTOP)
	paused := true
	resume := func() {
		if paused {
			pb.signal(t, syscall.SIGCONT)
			paused = false
		}
	}
	t.Cleanup(resume)
	nodes := []*proxyProc{node(0, []tlsHost{{Domain: name, Tag: "le", LE: true}})}
	cli := etcd.Client(t)
	eventually(t, waitTimeout, func() bool {
		resp, err := cli.Get(t.Context(), "/e2e/locks/acme/"+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 1
	}, "edge-1 holding the order lock of ", name)
	for i := 1; i < 3; i++ {
		p := node(i, nil)
		p.waitLog(t, msgIs("Another node of the fleet is ordering this certificate; installing it when it appears"),
			"that another node orders "+name)
		nodes = append(nodes, p)
	}
	resume()

	var serial string
	for i, p := range nodes {
		eventually(t, acmeIssueTimeout, func() bool {
			got, err := pebbleLeaf(p.HTTPS, name, roots)
			if err != nil {
				return false
			}
			s := got.SerialNumber.Text(16)
			if serial == "" {
				serial = s
			}
			return s == serial
		}, fmt.Sprintf("edge-%d serving the fleet's certificate for %s", i+1, name))
		requireACMEValid(t, p, name)
	}
	if n := strings.Count(pb.out.String(), "POST /order-plz"); n != 1 {
		t.Errorf("Pebble received %d orders for one domain in a fleet of three, want 1", n)
	}
	ordered := func(p *proxyProc) bool { return slices.ContainsFunc(p.out.Lines(), msgIs("trying to solve challenge")) }
	if !ordered(nodes[0]) {
		t.Errorf("edge-1 did not order")
	}
	for i, p := range nodes[1:] {
		if ordered(p) {
			t.Errorf("edge-%d ordered too", i+2)
		}
	}
}

// freePortOnAll returns a port that is free on every address of ips.
func freePortOnAll(t *testing.T, ips []string) int {
	t.Helper()
	lns, port := testutil.ListenAll(t, ips)
	for _, ln := range lns {
		ln.Close()
	}
	return port
}

// dnsManagement matches pebble-challtestsrv's line naming its management
// address.
var dnsManagement = regexp.MustCompile(`Starting management server on (\S+)`)

// setA makes Pebble's DNS answer host with addr.
func (pb *pebbleProc) setA(t *testing.T, host, addr string) {
	t.Helper()
	m := dnsManagement.FindStringSubmatch(pb.dns.out.String())
	if m == nil {
		t.Fatalf("pebble-challtestsrv did not log its management address:\n%s", pb.dns.out.String())
	}
	body, _ := json.Marshal(map[string]any{"host": host, "addresses": []string{addr}})
	resp, err := http.Post("http://"+m[1]+"/add-a", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble-challtestsrv /add-a: %s", resp.Status)
	}
}
