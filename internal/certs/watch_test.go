package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// reloadTimeout bounds how long a file change may take to be served.
const reloadTimeout = 5 * time.Second

// watchOptions make the watcher, not the periodic re-check, do the work.
func watchOptions() Options {
	return Options{Debounce: 20 * time.Millisecond, Recheck: time.Hour}
}

// replaceByRename writes data to a temporary file beside path and renames
// it over path, as editors and certbot do.
func replaceByRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// k8sSecret lays out files as a Kubernetes secret volume: dir/tls.crt and
// dir/tls.key are symlinks into dir/..data, itself a symlink to a
// timestamped directory that is swapped atomically on update.
type k8sSecret struct {
	t       *testing.T
	dir     string
	current string
	n       int
}

func newK8sSecret(t *testing.T, dir string, p pair) *k8sSecret {
	s := &k8sSecret{t: t, dir: dir}
	s.swap(p)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// swap publishes p the way the kubelet's AtomicWriter does.
func (s *k8sSecret) swap(p pair) {
	s.t.Helper()
	s.n++
	ts := fmt.Sprintf("..2024_01_01_00_00_%02d.%d", s.n, s.n)
	writeFile(s.t, filepath.Join(s.dir, ts, "tls.crt"), p.certPEM)
	writeFile(s.t, filepath.Join(s.dir, ts, "tls.key"), p.keyPEM)
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
	if s.current != "" {
		if err := os.RemoveAll(filepath.Join(s.dir, s.current)); err != nil {
			s.t.Fatal(err)
		}
	}
	s.current = ts
}

func TestHotReload(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	// inPlace and renamed write dir/site.crt and dir/site.key.
	plain := func(t *testing.T, dir string, p pair) Host { return writePair(t, dir, "site", "hot.test", p) }
	tests := []struct {
		name string
		// setup publishes the first certificate and returns the host and
		// a function publishing the next one.
		setup func(t *testing.T, dir string, p pair) (Host, func(p pair))
	}{
		{
			name: "rewrite in place",
			setup: func(t *testing.T, dir string, p pair) (Host, func(pair)) {
				h := plain(t, dir, p)
				return h, func(p pair) {
					writeFile(t, h.CertPath, p.certPEM)
					writeFile(t, h.KeyPath, p.keyPEM)
				}
			},
		},
		{
			name: "replace by rename",
			setup: func(t *testing.T, dir string, p pair) (Host, func(pair)) {
				h := plain(t, dir, p)
				return h, func(p pair) {
					replaceByRename(t, h.KeyPath, p.keyPEM)
					replaceByRename(t, h.CertPath, p.certPEM)
				}
			},
		},
		{
			name: "kubernetes ..data swap",
			setup: func(t *testing.T, dir string, p pair) (Host, func(pair)) {
				s := newK8sSecret(t, dir, p)
				return Host{Domain: "hot.test", Source: SourceFile,
					CertPath: filepath.Join(dir, "tls.crt"), KeyPath: filepath.Join(dir, "tls.key")}, s.swap
			},
		},
		{
			name: "certbot live symlinks into archive",
			setup: func(t *testing.T, dir string, p pair) (Host, func(pair)) {
				archive, live := filepath.Join(dir, "archive"), filepath.Join(dir, "live")
				if err := os.MkdirAll(live, 0o755); err != nil {
					t.Fatal(err)
				}
				version := 0
				publish := func(p pair) {
					version++
					for _, f := range []struct {
						name string
						data []byte
					}{{"privkey", p.keyPEM}, {"fullchain", p.certPEM}} {
						target := fmt.Sprintf("%s%d.pem", f.name, version)
						writeFile(t, filepath.Join(archive, target), f.data)
						link := filepath.Join(live, f.name+".pem")
						if err := os.Symlink(filepath.Join("..", "archive", target), link+".new"); err != nil {
							t.Fatal(err)
						}
						if err := os.Rename(link+".new", link); err != nil {
							t.Fatal(err)
						}
					}
				}
				publish(p)
				return Host{Domain: "hot.test", Source: SourceFile,
					CertPath: filepath.Join(live, "fullchain.pem"), KeyPath: filepath.Join(live, "privkey.pem")}, publish
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p1 := root.leaf(t, leafOpts{names: []string{"hot.test"}})
			h, update := tt.setup(t, dir, p1)
			m, logs, _ := newTestManager(t, watchOptions())
			m.Sync([]Host{h})
			addr := serveHTTPS(t, m)
			runManager(t, m)
			if err := wantSerial(t, addr, "hot.test", p1)(); err != nil {
				t.Fatal(err)
			}
			for i := range 2 { // twice: the watch must survive the first swap
				p := root.leaf(t, leafOpts{names: []string{"hot.test"}, rsa: i == 1})
				update(p)
				eventually(t, reloadTimeout, wantSerial(t, addr, "hot.test", p))
			}
			if !containsAll(logs.String(), "Certificate reloaded", "domain=hot.test") {
				t.Errorf("no reload log:\n%s", logs.String())
			}
			if in := mustInfo(t, m, "hot.test"); in.LastError != "" {
				// A transient mismatch (new cert, old key) may have been
				// seen mid-update, but the final state must be clean.
				t.Errorf("LastError %q after the update settled", in.LastError)
			}
		})
	}
}

func TestHotReloadBrokenFileKeepsCertificate(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	p1 := root.leaf(t, leafOpts{names: []string{"hot.test"}})
	h := writePair(t, dir, "site", "hot.test", p1)
	m, logs, reg := newTestManager(t, watchOptions())
	m.Sync([]Host{h})
	addr := serveHTTPS(t, m)
	runManager(t, m)

	replaceByRename(t, h.CertPath, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	eventually(t, reloadTimeout, func() error {
		if in := mustInfo(t, m, "hot.test"); !strings.Contains(in.LastError, h.CertPath) {
			return fmt.Errorf("LastError %q", in.LastError)
		}
		return nil
	})
	if err := wantSerial(t, addr, "hot.test", p1)(); err != nil {
		t.Errorf("broken file replaced the served certificate: %v", err)
	}
	in := mustInfo(t, m, "hot.test")
	if in.Status != StatusValid || in.ExpiresAt == nil {
		t.Errorf("Info while the file is broken: %+v", in)
	}
	if got := testutil.ToFloat64(m.met.reloads.WithLabelValues("hot.test", "failure")); got != 1 {
		t.Errorf("reloads_total{result=failure} = %v, want 1", got)
	}
	if !containsAll(logs.String(), "level=ERROR", "still serving the previous certificate", h.CertPath) {
		t.Errorf("failure not logged at error naming the file:\n%s", logs.String())
	}
	// A periodic re-check of the same broken content neither logs nor
	// counts it again.
	m.recheck(nil, true)
	if got := testutil.ToFloat64(m.met.reloads.WithLabelValues("hot.test", "failure")); got != 1 {
		t.Errorf("re-check of unchanged broken files counted again: %v", got)
	}

	// Fixing the files swaps and clears the error.
	p2 := root.leaf(t, leafOpts{names: []string{"hot.test"}})
	replaceByRename(t, h.KeyPath, p2.keyPEM)
	replaceByRename(t, h.CertPath, p2.certPEM)
	eventually(t, reloadTimeout, wantSerial(t, addr, "hot.test", p2))
	eventually(t, reloadTimeout, func() error {
		if in := mustInfo(t, m, "hot.test"); in.LastError != "" {
			return fmt.Errorf("LastError %q after the fix", in.LastError)
		}
		return nil
	})
	if got, err := testutil.GatherAndCount(reg, "certificate_reloads_total"); err != nil || got != 2 {
		t.Errorf("certificate_reloads_total series = %d, %v; want success and failure", got, err)
	}
}

func TestOpenConnectionSurvivesReload(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	p1 := root.leaf(t, leafOpts{names: []string{"conn.test"}})
	h := writePair(t, dir, "site", "conn.test", p1)
	m, _, _ := newTestManager(t, watchOptions())
	m.Sync([]Host{h})
	addr := serveHTTPS(t, m)
	runManager(t, m)

	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{ServerName: "conn.test", RootCAs: root.pool()},
		MaxIdleConnsPerHost: 1,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() (serial *big.Int, reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodGet, "https://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber, reused
	}

	if s, _ := get(); s.Cmp(p1.leaf.SerialNumber) != 0 {
		t.Fatal("first request not served the first certificate")
	}
	p2 := root.leaf(t, leafOpts{names: []string{"conn.test"}})
	replaceByRename(t, h.KeyPath, p2.keyPEM)
	replaceByRename(t, h.CertPath, p2.certPEM)
	eventually(t, reloadTimeout, wantSerial(t, addr, "conn.test", p2))

	s, reused := get()
	if !reused {
		t.Fatal("the second request did not reuse the open connection")
	}
	if s.Cmp(p1.leaf.SerialNumber) != 0 {
		t.Error("the open connection's certificate changed")
	}
}

func TestPeriodicRecheckWithoutWatcher(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	p1 := root.leaf(t, leafOpts{names: []string{"poll.test"}})
	h := writePair(t, dir, "site", "poll.test", p1)
	m, _, _ := newTestManager(t, Options{Recheck: 50 * time.Millisecond, noWatch: true})
	m.Sync([]Host{h})
	addr := serveHTTPS(t, m)
	runManager(t, m)

	p2 := root.leaf(t, leafOpts{names: []string{"poll.test"}})
	writeFile(t, h.CertPath, p2.certPEM)
	writeFile(t, h.KeyPath, p2.keyPEM)
	eventually(t, reloadTimeout, wantSerial(t, addr, "poll.test", p2))

	// The directory deleted and recreated (a volume remounted).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	p3 := root.leaf(t, leafOpts{names: []string{"poll.test"}})
	writePair(t, dir, "site", "poll.test", p3)
	eventually(t, reloadTimeout, wantSerial(t, addr, "poll.test", p3))
}

func TestWatchSurvivesDirectoryRecreation(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := filepath.Join(t.TempDir(), "certs")
	p1 := root.leaf(t, leafOpts{names: []string{"dir.test"}})
	h := writePair(t, dir, "site", "dir.test", p1)
	o := watchOptions()
	o.Recheck = 100 * time.Millisecond
	m, _, _ := newTestManager(t, o)
	m.Sync([]Host{h})
	addr := serveHTTPS(t, m)
	runManager(t, m)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	p2 := root.leaf(t, leafOpts{names: []string{"dir.test"}})
	writePair(t, dir, "site", "dir.test", p2)
	eventually(t, reloadTimeout, wantSerial(t, addr, "dir.test", p2))
}

func TestRenewalWarningOncePerLoad(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	dir := t.TempDir()
	soon := root.leaf(t, leafOpts{names: []string{"soon.test"}, notAfter: time.Now().Add(10 * 24 * time.Hour)})
	later := root.leaf(t, leafOpts{names: []string{"later.test"}})
	m, logs, _ := newTestManager(t, Options{RenewalWarning: 30 * 24 * time.Hour})
	m.Sync([]Host{writePair(t, dir, "soon", "soon.test", soon), writePair(t, dir, "later", "later.test", later),
		{Domain: "le.test", Source: SourceLetsEncrypt}})
	m.recheck(nil, true)
	m.recheck(nil, true)
	var warnings []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "Certificate expires soon") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 || !containsAll(warnings[0], "level=WARN", "domain=soon.test", "days_until_expiration=9") {
		t.Errorf("expiry warnings %q, want one for soon.test", warnings)
	}
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	t.Parallel()
	m, _, _ := newTestManager(t, watchOptions())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	m.Sync([]Host{{Domain: "x.test", Source: SourceFile, CertPath: "/nonexistent/x.crt", KeyPath: "/nonexistent/x.key"}})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if errors.Is(ctx.Err(), context.Canceled) && m.running.Load() {
		t.Error("Run still marked running")
	}
}
