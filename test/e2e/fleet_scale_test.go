package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/testutil/etcdtest"
)

// BenchmarkFleetScale measures a fleet at scale: FLEET_N domains and as
// many backends (default 10,000) in etcd, three nodes on a three-member
// etcd cluster, beside one node on the file store with the same
// configuration. It reports each node's start time (process start to
// "fronttier started") and resident memory, the time one switch takes to
// be in force on the other nodes (p50, p99), and API writes per second,
// sequential and from three nodes at once. It runs once whatever b.N:
//
//	go test -run XXX -bench BenchmarkFleetScale -benchtime 1x ./test/e2e/
func BenchmarkFleetScale(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("FLEET_N")); err == nil && v > 0 {
		n = v
	}
	etcd := etcdtest.Start(b, 3)
	c := scaleConf(n)

	// The file store, for comparison.
	fileNode, startFile := timedStart(b, c)
	b.ReportMetric(startFile.Seconds(), "file-start-s")
	b.ReportMetric(rssMiB(b, fileNode), "file-rss-MiB")
	b.ReportMetric(writeRate(b, []*proxyProc{fileNode}, n, 100), "file-writes/s")
	fileNode.kill()

	// The fleet: edge-1 seeds, edge-2 and edge-3 load from etcd.
	var nodes []*proxyProc
	for i, name := range []string{"edge-1", "edge-2", "edge-3"} {
		p, d := timedStart(b, fleetConf(b, etcd, name, c))
		nodes = append(nodes, p)
		b.ReportMetric(d.Seconds(), fmt.Sprintf("edge%d-start-s", i+1))
	}
	b.ReportMetric(rssMiB(b, nodes[0]), "edge1-rss-MiB")
	b.ReportMetric(rssMiB(b, nodes[1]), "edge2-rss-MiB")

	// One switch on edge-1, until in force on edge-2 and edge-3.
	var lags []time.Duration
	for i := range 100 {
		d := fmt.Sprintf("d%d.example.com", i*97%n)
		tag := fmt.Sprintf("t%d", (i*97%n/10+1)%(n/10))
		start := time.Now()
		nodes[0].mustAPI(b, http.StatusOK, http.MethodPost, "/domains/"+d+"/switch", map[string]any{"new_tag": tag, "force": true}, nil)
		for _, p := range nodes[1:] {
			for {
				var v struct {
					Tag string `json:"enabled_backends_tag"`
				}
				p.mustAPI(b, http.StatusOK, http.MethodGet, "/domains/"+d, nil, &v)
				if v.Tag == tag {
					break
				}
				if time.Since(start) > 30*time.Second {
					b.Fatalf("%s on %s still not on %s after 30 s", d, p.API, tag)
				}
				time.Sleep(time.Millisecond) // polling, bounded above
			}
			lags = append(lags, time.Since(start))
		}
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "propagation-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "propagation-p99-ms")
	b.ReportMetric(writeRate(b, nodes[:1], n, 200), "fleet-writes/s")
	b.ReportMetric(writeRate(b, nodes, n, 100), "fleet-3-writers/s")
}

// scaleConf has n domains on tags of ten backends each, as bench/scale.sh
// and internal/state's bigConfig; backends listen nowhere, and are checked
// once a minute.
func scaleConf(n int) conf {
	c := conf{CacheDir: ""}
	for i := range n {
		c.Domains = append(c.Domains, domainConf{fmt.Sprintf("d%d.example.com", i), fmt.Sprintf("t%d", i/10)})
		c.Backends = append(c.Backends, backendConf{ID: fmt.Sprintf("b%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i%12000),
			Tags: []string{fmt.Sprintf("t%d", i/10)}})
	}
	return c
}

// timedStart starts a proxy on c and returns it with its start time.
func timedStart(b *testing.B, c conf) (*proxyProc, time.Duration) {
	b.Helper()
	c.CacheDir = filepath.Join(b.TempDir(), "acme-cache")
	path := writeConfig(b, c)
	// A minute between health checks, so that 10,000 refused backends do
	// not dominate what is measured.
	data := strings.Replace(string(readFile(b, path)), "interval_secs = 1\n", "interval_secs = 60\n", 1)
	writeFile(b, path, data)
	start := time.Now()
	p := startProxy(b, path)
	return p, time.Since(start)
}

// rssMiB is the process's resident memory, in MiB.
func rssMiB(b *testing.B, p *proxyProc) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// writeRate makes each of writes switches on every node of nodes at once
// and returns the acknowledged writes per second.
func writeRate(b *testing.B, nodes []*proxyProc, n, writes int) float64 {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for w, p := range nodes {
		wg.Go(func() {
			for i := range writes {
				d := fmt.Sprintf("d%d.example.com", (w*writes+i)*31%n)
				status, body, err := p.tryAPI(http.MethodPost, "/domains/"+d+"/switch",
					map[string]any{"new_tag": fmt.Sprintf("t%d", i%(n/10)), "force": true})
				if err != nil || status != http.StatusOK {
					b.Errorf("switch %s: %d %s %v", d, status, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(writes*len(nodes)) / time.Since(start).Seconds()
}
