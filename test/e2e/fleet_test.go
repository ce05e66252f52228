package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/testutil/etcdtest"
)

// fleetConf is a node's file: its own listeners, the fleet's etcd, and a
// snapshot beside it.
func fleetConf(t testing.TB, etcd *etcdtest.Cluster, name string, c conf) conf {
	eps := make([]string, len(etcd.Endpoints()))
	for i, e := range etcd.Endpoints() {
		eps[i] = fmt.Sprintf("%q", strings.TrimPrefix(e, "http://"))
	}
	c.CacheDir = filepath.Join(t.TempDir(), "acme-cache")
	c.Extra = fmt.Sprintf("\n[cluster]\nstore = \"etcd\"\netcd_endpoints = [%s]\netcd_prefix = \"/e2e\"\nnode_name = %q\netcd_dial_timeout_secs = 2\n",
		strings.Join(eps, ", "), name)
	return c
}

// clusterView is GET /api/v1/cluster.
type clusterView struct {
	Store    string `json:"store"`
	Revision int64  `json:"revision"`
	Nodes    []struct {
		Name     string `json:"name"`
		APIAddr  string `json:"api_addr"`
		Revision int64  `json:"revision"`
	} `json:"nodes"`
}

// TestFleet runs three fronttier nodes on a three-member etcd cluster and
// breaks it the ways production does: a write on any node is served by
// all; concurrent writers on all nodes lose nothing; with the etcd leader
// killed writes go on; with all of etcd stopped every node keeps serving
// and writes answer 503; a node killed and restarted while etcd is down
// serves its last-known-good snapshot; once etcd is back, all converge.
func TestFleet(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 3)
	a1, b1 := startBackend(t, "a1"), startBackend(t, "b1")
	seed := conf{
		Domains:  []domainConf{{"shop.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("b1", b1, "b")},
	}
	nodes := []*proxyProc{newProxy(t, fleetConf(t, etcd, "edge-1", seed))}
	nodes[0].waitLog(t, msgHasPrefix("seeded the fleet's state"), "the seed from edge-1's file")
	for _, name := range []string{"edge-2", "edge-3"} {
		// Their files disagree (no domain at all): etcd wins, and they say so.
		p := newProxy(t, fleetConf(t, etcd, name, conf{Backends: []backendConf{be("a1", a1, "a")}}))
		p.waitLog(t, msgHasPrefix("this node's file differs from the fleet's state"), "the disagreement logged")
		nodes = append(nodes, p)
	}
	for i, p := range nodes {
		if id := p.backendOf(t, "shop.example.com"); id != "a1" {
			t.Fatalf("edge-%d routes shop.example.com to %q, want a1", i+1, id)
		}
	}

	// A switch on edge-2 is served by every node.
	start := time.Now()
	nodes[1].mustAPI(t, http.StatusOK, http.MethodPost, "/domains/shop.example.com/switch", map[string]string{"new_tag": "b"}, nil)
	var lags []time.Duration
	for i, p := range nodes {
		eventually(t, waitTimeout, func() bool { return p.backendOf(t, "shop.example.com") == "b1" },
			fmt.Sprintf("edge-%d serving the switch made on edge-2", i+1))
		lags = append(lags, time.Since(start))
	}
	t.Logf("a switch on edge-2 served by edge-1..3 after %v (bounded by polling every 20 ms)", lags)
	// edge-1 measured how long the change took to reach it.
	resp, err := http.Get("http://" + nodes[0].API + "/api/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var seen bool
	for _, s := range parseMetrics(t, string(text)) {
		switch s.name {
		case "fleet_propagation_seconds_count":
			seen = s.value >= 1
		case "fleet_store_up":
			if s.value != 1 {
				t.Errorf("fleet_store_up = %v on edge-1, want 1", s.value)
			}
		}
	}
	if !seen {
		t.Errorf("edge-1 observed no fleet_propagation_seconds:\n%s", grepLines(string(text), "fleet_"))
	}

	// Every node lists the fleet, each at the revision it applied.
	var view clusterView
	eventually(t, waitTimeout, func() bool {
		nodes[2].mustAPI(t, http.StatusOK, http.MethodGet, "/cluster", nil, &view)
		if len(view.Nodes) != 3 {
			return false
		}
		for _, n := range view.Nodes {
			if n.Revision != view.Nodes[0].Revision {
				return false
			}
		}
		return true
	}, "three nodes at one revision in /api/v1/cluster")
	if view.Store != "etcd" || view.Nodes[0].Name != "edge-1" || view.Revision != view.Nodes[2].Revision {
		t.Errorf("cluster view %+v", view)
	}

	// Concurrent writers on every node lose nothing.
	var wg sync.WaitGroup
	var want []string
	for i, p := range nodes {
		for j := range 5 {
			id := fmt.Sprintf("w%d-%d", i+1, j)
			want = append(want, id)
			wg.Go(func() {
				status, body, err := p.tryAPI(http.MethodPost, "/backends",
					map[string]any{"id": id, "address": "127.0.0.1:9", "tags": []string{"spare"}})
				if err != nil || status != http.StatusCreated {
					t.Errorf("add %s on edge-%d: %d %s %v", id, i+1, status, body, err)
				}
			})
		}
	}
	wg.Wait()
	sort.Strings(want)
	for i, p := range nodes {
		eventually(t, waitTimeout, func() bool {
			var list []struct{ ID string }
			p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &list)
			n := 0
			for _, b := range list {
				if slices.Contains(want, b.ID) {
					n++
				}
			}
			return n == len(want)
		}, fmt.Sprintf("edge-%d listing all %d backends written concurrently", i+1, len(want)))
	}
	etags := map[string]bool{}
	for _, p := range nodes {
		resp, _, err := p.apiRaw(http.MethodGet, "/backends/w1-0", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		etags[resp.Header.Get("ETag")] = true
	}
	if len(etags) != 1 {
		t.Errorf("one backend has ETags %v across the nodes, want one", etags)
	}

	// The etcd leader killed: writes go on (a write in flight during the
	// election may be refused with 503; a later one succeeds).
	etcd.Kill(etcd.Leader(t))
	eventually(t, 30*time.Second, func() bool {
		status, _, err := nodes[0].tryAPI(http.MethodPost, "/domains/shop.example.com/switch", map[string]string{"new_tag": "a"})
		return err == nil && status == http.StatusOK
	}, "a write accepted after the etcd leader was killed")
	for i, p := range nodes {
		eventually(t, waitTimeout, func() bool { return p.backendOf(t, "shop.example.com") == "a1" },
			fmt.Sprintf("edge-%d serving the write made without the old leader", i+1))
	}

	// All of etcd stopped: every node serves; writes are refused with 503.
	etcd.StopAll()
	for i, p := range nodes {
		if id := p.backendOf(t, "shop.example.com"); id != "a1" {
			t.Errorf("with etcd down edge-%d routes to %q, want a1", i+1, id)
		}
		status, body, err := p.tryAPI(http.MethodPost, "/domains/shop.example.com/switch", map[string]string{"new_tag": "b"})
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if err != nil || status != http.StatusServiceUnavailable || e.Error == "" {
			t.Errorf("with etcd down edge-%d answered a write %d %s (%v), want 503 with an error", i+1, status, body, err)
		}
	}
	// A node killed and restarted while etcd is down serves its snapshot.
	nodes[2].kill()
	nodes[2] = nodes[2].restart(t)
	nodes[2].waitLog(t, msgHasPrefix("etcd cannot be reached: serving the last-known-good snapshot"), "the snapshot used")
	if id := nodes[2].backendOf(t, "shop.example.com"); id != "a1" {
		t.Errorf("edge-3 restarted with etcd down routes to %q, want a1 from its snapshot", id)
	}

	// etcd back: writes work again and every node converges.
	etcd.StartAll()
	eventually(t, 30*time.Second, func() bool {
		status, _, err := nodes[2].tryAPI(http.MethodPost, "/domains/shop.example.com/switch", map[string]string{"new_tag": "b"})
		return err == nil && status == http.StatusOK
	}, "a write accepted on the restarted node once etcd is back")
	for i, p := range nodes {
		eventually(t, waitTimeout, func() bool { return p.backendOf(t, "shop.example.com") == "b1" },
			fmt.Sprintf("edge-%d converged after etcd came back", i+1))
	}
}
