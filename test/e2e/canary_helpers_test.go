package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// canaryObj is the canary of a domain object.
type canaryObj struct {
	Tag     string  `json:"tag"`
	Percent float64 `json:"percent"`
}

// canaryDomain is a domain object with the canary sections.
type canaryDomain struct {
	Domain             string     `json:"domain"`
	EnabledBackendsTag string     `json:"enabled_backends_tag"`
	Canary             *canaryObj `json:"canary"`
	Sticky             *struct {
		By      string `json:"by"`
		Backend bool   `json:"backend"`
	} `json:"sticky"`
	Overrides []map[string]string `json:"overrides"`
}

// canaryProxy starts backends a1, a2 (tag a) and b1, b2 (tag b) and a
// proxy routing each of domains to tag a.
func canaryProxy(t testing.TB, c conf, domains ...string) (*proxyProc, map[string]*backendProc) {
	t.Helper()
	bs := map[string]*backendProc{}
	for _, id := range []string{"a1", "a2", "b1", "b2"} {
		bs[id] = startBackend(t, id)
		c.Backends = append(c.Backends, be(id, bs[id], id[:1]))
	}
	for _, d := range domains {
		c.Domains = append(c.Domains, domainConf{d, "a"})
	}
	return newProxy(t, c), bs
}

// setCanary puts domain's canary at percent of tag b and requires 200 and
// the canary in the answer.
func (p *proxyProc) setCanary(t testing.TB, domain string, percent float64) {
	t.Helper()
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodPut, "/domains/"+domain+"/canary", map[string]any{"tag": "b", "percent": percent}, &d)
	if d.Canary == nil || d.Canary.Tag != "b" || d.Canary.Percent != percent {
		t.Fatalf("PUT canary %v%%: the answer shows canary %+v", percent, d.Canary)
	}
}

// putDomain sends a PUT of domain with body and requires 200.
func (p *proxyProc) putDomain(t testing.TB, domain string, body any) canaryDomain {
	t.Helper()
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodPut, "/domains/"+domain, body, &d)
	return d
}

// placed is where one request went.
type placed struct {
	id, tag string
	bucket  int      // the fronttier_bucket the answer set, -1 when none
	cookies []string // the proxy's Set-Cookie lines
}

// place sends GET path for host with the extra header lines ("Name:
// value") and returns where it went; any answer but 200 is an error.
func (p *proxyProc) place(host, path string, lines ...string) (placed, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.HTTP+path, nil)
	if err != nil {
		return placed{}, err
	}
	req.Host = host
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ": ")
		req.Header.Add(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return placed{}, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return placed{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return placed{}, fmt.Errorf("GET %s (Host %s, %q): %s", path, host, lines, resp.Status)
	}
	id := resp.Header.Get("X-Backend-Id")
	pl := placed{id: id, bucket: -1}
	if id != "" {
		pl.tag = id[:1]
	}
	for _, c := range resp.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(c, "fronttier_") {
			continue
		}
		pl.cookies = append(pl.cookies, c)
		if v, ok := strings.CutPrefix(c, "fronttier_bucket="); ok {
			v, _, _ = strings.Cut(v, ";")
			if pl.bucket, err = strconv.Atoi(v); err != nil {
				return placed{}, fmt.Errorf("Set-Cookie %q: %v", c, err)
			}
		}
	}
	return pl, nil
}

// parallel runs f(0) .. f(n-1) on workers goroutines and fails the test
// with the first error.
func parallel(t testing.TB, n, workers int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// share is 100*k/n.
func share(k, n int) float64 { return 100 * float64(k) / float64(n) }

// within fails the test when got is not want ± slack points.
func within(t testing.TB, what string, got, want, slack float64) {
	t.Helper()
	if got < want-slack || got > want+slack {
		t.Errorf("%s: canary share %.2f%%, want %v%% ± %v", what, got, want, slack)
	} else {
		t.Logf("%s: canary share %.2f%% (want %v%% ± %v)", what, got, want, slack)
	}
}
