package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPersistenceAcrossCrash kills the proxy with SIGKILL right after an
// acknowledged change: restarted on the same file, it has the change.
func TestPersistenceAcrossCrash(t *testing.T) {
	t.Parallel()
	a1, b1, c1 := startBackend(t, "a1"), startBackend(t, "b1"), startBackend(t, "c1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"p.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("b1", b1, "b")},
	})
	if id := p.backendOf(t, "p.example.com"); id != "a1" {
		t.Fatalf("p.example.com went to %q before any change", id)
	}

	// 1: a new backend, then kill -9 at once.
	p.mustAPI(t, http.StatusCreated, http.MethodPost, "/backends",
		map[string]any{"id": "c1", "address": c1.Addr, "tags": []string{"c"}}, nil)
	p.kill()
	p = p.restart(t)
	var got backendObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends/c1", nil, &got)
	if got.Address != c1.Addr || !slices.Equal(got.Tags, []string{"c"}) {
		t.Fatalf("after a crash backend c1 is %+v", got)
	}

	// 2: a new domain and a switch, then kill -9 at once.
	p.mustAPI(t, http.StatusCreated, http.MethodPost, "/domains",
		map[string]string{"domain": "q.example.com", "enabled_backends_tag": "c"}, nil)
	p.switchTag(t, "p.example.com", "b")
	p.kill()
	p = p.restart(t)
	var d domainObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/p.example.com", nil, &d)
	if d.EnabledBackendsTag != "b" {
		t.Fatalf("after a crash p.example.com has tag %q, want b", d.EnabledBackendsTag)
	}
	for host, want := range map[string]string{"p.example.com": "b1", "q.example.com": "c1"} {
		if id := p.backendOf(t, host); id != want {
			t.Errorf("after a crash %s went to %q, want %s", host, id, want)
		}
	}

	// 3: a delete, then kill -9.
	p.mustAPI(t, http.StatusNoContent, http.MethodDelete, "/domains/q.example.com", nil, nil)
	p.kill()
	p = p.restart(t)
	p.mustAPI(t, http.StatusNotFound, http.MethodGet, "/domains/q.example.com", nil, nil)
	if resp, _ := p.get(t, "q.example.com", "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted q.example.com answers %d after a crash", resp.StatusCode)
	}

	// The file parses, and no temporary file was left beside it.
	p.kill()
	requireValid(t, p.Config)
	entries, err := os.ReadDir(filepath.Dir(p.Config))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(p.Config) {
			t.Errorf("left beside the config file: %s", e.Name())
		}
	}
}

// TestConcurrentWrites posts 30 backends at once: all are acknowledged and
// all are in the file.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	p := newProxy(t, conf{})
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{
				"id":      fmt.Sprintf("be-%02d", i),
				"address": fmt.Sprintf("127.0.0.1:%d", 20000+i),
				"tags":    []string{"t", fmt.Sprintf("t%d", i)},
			}
			status, data, err := p.tryAPI(http.MethodPost, "/backends", body)
			if err != nil || status != http.StatusCreated {
				errs <- fmt.Sprintf("POST %v: %d %s %v", body["id"], status, data, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	check := func(p *proxyProc, when string) {
		t.Helper()
		var bs []backendObj
		p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &bs)
		if len(bs) != n {
			t.Fatalf("%s: %d backends, want %d", when, len(bs), n)
		}
		for i, b := range bs {
			if id, addr := fmt.Sprintf("be-%02d", i), fmt.Sprintf("127.0.0.1:%d", 20000+i); b.ID != id || b.Address != addr {
				t.Fatalf("%s: backend %d is %+v, want %s at %s", when, i, b, id, addr)
			}
		}
	}
	check(p, "before restart")
	requireValid(t, p.Config)
	if c := strings.Count(string(readFile(t, p.Config)), "[[backends]]"); c != n {
		t.Errorf("the config file has %d [[backends]] tables, want %d", c, n)
	}
	p.kill()
	check(p.restart(t), "after restart")
}

// TestGracefulShutdown sends SIGTERM while a slow request is in flight: it
// completes, new connections are refused, the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	slow := startBackend(t, "slow1", "-delay", "1s")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"slow.example.com", "s"}},
		Backends: []backendConf{be("slow1", slow, "s")},
	})

	type result struct {
		status int
		id     string
		err    error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, _, err := p.request(http.MethodGet, "slow.example.com", "/slow", nil, nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{status: resp.StatusCode, id: resp.Header.Get("X-Backend-Id")}
	}()
	// The request is in flight once the proxy counts it on the backend.
	eventually(t, waitTimeout, func() bool {
		var b backendObj
		return p.api(t, http.MethodGet, "/backends/slow1", nil, &b) == http.StatusOK && b.ActiveRequests == 1
	}, "the slow request is in flight")

	p.signal(t, syscall.SIGTERM)
	eventually(t, waitTimeout, func() bool { return dialRefused(p.HTTP) }, "new connections are refused after SIGTERM")
	select {
	case r := <-done:
		t.Fatalf("the slow request (%d, %v) ended %v after it started, before new connections were refused: it was not drained",
			r.status, r.err, time.Since(start))
	default:
	}

	select {
	case r := <-done:
		if r.err != nil || r.status != http.StatusOK || r.id != "slow1" {
			t.Fatalf("the request in flight at SIGTERM: status %d, backend %q, error %v", r.status, r.id, r.err)
		}
	case <-time.After(exitTimeout):
		t.Fatal("the request in flight at SIGTERM did not complete")
	}
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !dialRefused(p.API) {
		t.Errorf("the management API still accepts connections after exit")
	}
}

// TestSIGHUPReload edits the file by hand and sends SIGHUP: the new domain
// routes. An invalid file is refused and the running configuration stays.
func TestSIGHUPReload(t *testing.T) {
	t.Parallel()
	a1, n1 := startBackend(t, "a1"), startBackend(t, "n1")
	c := conf{
		Domains:  []domainConf{{"old.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("n1", n1, "n")},
		CacheDir: filepath.Join(t.TempDir(), "acme-cache"),
	}
	p := newProxy(t, c)
	if resp, _ := p.get(t, "new.example.com", "/"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("new.example.com answers %d before it is added", resp.StatusCode)
	}

	// A hand edit: add a domain.
	c.Domains = append(c.Domains, domainConf{"new.example.com", "n"})
	writeFile(t, p.Config, c.String())
	p.signal(t, syscall.SIGHUP)
	eventually(t, waitTimeout, func() bool { return p.backendOf(t, "new.example.com") == "n1" },
		"new.example.com routes to n1 after SIGHUP")
	var d domainObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/new.example.com", nil, &d)
	if d.EnabledBackendsTag != "n" {
		t.Errorf("API shows %+v after SIGHUP", d)
	}

	// An invalid file: refused, and the old configuration keeps serving.
	from := len(p.out.Lines())
	writeFile(t, p.Config, c.String()+"\n[[virtual_hosts]]\ndomain = \"bad_domain!\"\nenabled_backends_tag = \"a\"\nnot toml at all [\n")
	p.signal(t, syscall.SIGHUP)
	if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgHasPrefix("reload refused")); !ok {
		t.Fatalf("no \"reload refused\" log line after SIGHUP with an invalid file")
	}
	for host, want := range map[string]string{"old.example.com": "a1", "new.example.com": "n1"} {
		if id := p.backendOf(t, host); id != want {
			t.Errorf("after a refused reload %s went to %q, want %s", host, id, want)
		}
	}
	if p.exited() {
		t.Fatal("the proxy exited on an invalid file")
	}

	// A valid file again: removing a domain takes effect too.
	c.Domains = c.Domains[1:]
	writeFile(t, p.Config, c.String())
	p.signal(t, syscall.SIGHUP)
	eventually(t, waitTimeout, func() bool {
		resp, _ := p.get(t, "old.example.com", "/")
		return resp.StatusCode == http.StatusNotFound
	}, "old.example.com is gone after SIGHUP")
	if id := p.backendOf(t, "new.example.com"); id != "n1" {
		t.Errorf("new.example.com went to %q", id)
	}
}
