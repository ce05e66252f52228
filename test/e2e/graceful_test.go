package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Issue 7's "graceful everything": SIGHUP keeps connections and WebSockets,
// a configuration that cannot be saved fails API writes cleanly while the
// proxy keeps serving, and SIGTERM exits even with a WebSocket open.
// (Draining requests in flight on SIGTERM is TestGracefulShutdown.)

// rawConn is one client connection to the proxy's HTTP listener, driven by
// hand so that the test knows every request goes over the same TCP
// connection.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, p *proxyProc) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.HTTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// get sends GET path with Host host on the connection and returns the
// answer's backend id; it fails the test unless the answer is a 200 that
// keeps the connection open.
func (c *rawConn) get(t testing.TB, host, path string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		t.Fatalf("GET %s (Host %s) on %s: writing: %v", path, host, c.LocalAddr(), err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("GET %s (Host %s) on %s: reading: %v", path, host, c.LocalAddr(), err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s (Host %s) on %s: status %d, %v, body %q", path, host, c.LocalAddr(), resp.StatusCode, err, body)
	}
	if resp.Close {
		t.Fatalf("GET %s (Host %s): the proxy closes the connection (Connection: close)", path, host)
	}
	return resp.Header.Get("X-Backend-Id")
}

// dialWebSocket opens a WebSocket to host's /ws through the proxy (the
// testbackend then echoes raw bytes) and returns the connection once the
// 101 has arrived, with the backend that answered it.
func dialWebSocket(t testing.TB, p *proxyProc, host string) (c *rawConn, backendID string) {
	t.Helper()
	c = dialRaw(t, p)
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("WebSocket handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("WebSocket handshake answered %d %q, want 101", resp.StatusCode, body)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("Upgrade %q, want websocket", resp.Header.Get("Upgrade"))
	}
	return c, resp.Header.Get("X-Backend-Id")
}

// echo sends msg over an open WebSocket and requires it back.
func (c *rawConn) echo(t testing.TB, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("WebSocket: writing %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.br, got); err != nil {
		t.Fatalf("WebSocket: reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("WebSocket: echo %q, want %q", got, msg)
	}
}

// TestSIGHUPKeepsConnections reloads a changed file twice while a
// keep-alive connection and a WebSocket are open: neither is dropped, the
// next request on the old connection follows the new configuration, and
// the WebSocket stays with the backend it started on.
func TestSIGHUPKeepsConnections(t *testing.T) {
	t.Parallel()
	a1, n1 := startBackend(t, "a1"), startBackend(t, "n1")
	c := conf{
		Domains:  []domainConf{{"old.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("n1", n1, "n")},
		CacheDir: filepath.Join(t.TempDir(), "acme-cache"),
	}
	p := newProxy(t, c)

	kc := dialRaw(t, p)
	if id := kc.get(t, "old.example.com", "/first"); id != "a1" {
		t.Fatalf("old.example.com went to %q, want a1", id)
	}
	ws, id := dialWebSocket(t, p, "old.example.com")
	if id != "a1" {
		t.Fatalf("the WebSocket went to %q, want a1", id)
	}
	ws.echo(t, "before the reload")

	reload := func(c conf) {
		t.Helper()
		from := len(p.out.Lines())
		writeFile(t, p.Config, c.String())
		p.signal(t, syscall.SIGHUP)
		if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgIs("configuration reloaded")); !ok {
			t.Fatalf("no \"configuration reloaded\" after SIGHUP:\n%s", tail(p.out.String(), 20))
		}
	}

	// 1: a domain is added.
	c.Domains = append(c.Domains, domainConf{"new.example.com", "n"})
	reload(c)
	if id := p.backendOf(t, "new.example.com"); id != "n1" {
		t.Fatalf("new.example.com went to %q after SIGHUP, want n1", id)
	}
	// The same TCP connection (a write and a read on it succeed) serves
	// the old domain and the new one.
	if id := kc.get(t, "old.example.com", "/second"); id != "a1" {
		t.Errorf("after SIGHUP the old connection's request went to %q, want a1", id)
	}
	if id := kc.get(t, "new.example.com", "/third"); id != "n1" {
		t.Errorf("after SIGHUP the old connection's request for the new domain went to %q, want n1", id)
	}
	ws.echo(t, "after the first reload")

	// 2: the WebSocket's domain moves to the other backend. Requests follow
	// at once, on the old connection too; the WebSocket, in flight, stays
	// where it started.
	c.Domains[0].Tag = "n"
	reload(c)
	if id := kc.get(t, "old.example.com", "/fourth"); id != "n1" {
		t.Errorf("after the switch by SIGHUP the old connection's request went to %q, want n1", id)
	}
	ws.echo(t, "after the second reload, still through a1")
	if p.exited() {
		t.Fatal("the proxy exited")
	}
}

// TestConfigWriteFailure makes the configuration file unwritable while the
// proxy runs: API writes fail with 500 and a JSON error saying nothing was
// saved or changed, the configuration in force and the file stay as they
// were, and traffic keeps flowing. Once the file is writable again the
// same write succeeds.
//
// Running as root, chmod does not stop writes, and a full disk needs a
// mount; both failures are made portably instead, at the two ends of the
// atomic save (temporary file in the same directory, fsync, rename):
//   - the file's directory is renamed away, so the temporary file cannot
//     be created (what a read-only or vanished directory does);
//   - the file is replaced by a directory, so the temporary file is
//     written and synced and only the final rename fails (what a full disk
//     at the last step looks like): no temporary file may be left behind.
func TestConfigWriteFailure(t *testing.T) {
	t.Parallel()
	a1, b1, c1 := startBackend(t, "a1"), startBackend(t, "b1"), startBackend(t, "c1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"w.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("b1", b1, "b")},
		CacheDir: filepath.Join(t.TempDir(), "acme-cache"),
	})
	// Steady traffic for the whole test: none of it may fail.
	l := startLoad(t, p, "w.example.com", 2)
	l.more(t, 50, "load before the failures")

	dir := filepath.Dir(p.Config)
	moved := dir + ".moved"
	t.Cleanup(func() { os.Rename(moved, dir) }) // if the test stops half-way

	c1Body := map[string]any{"id": "c1", "address": c1.Addr, "tags": []string{"c"}}
	// failedWrite requires a 500 with a JSON error that says the
	// configuration could not be saved and nothing changed.
	failedWrite := func(method, path string, body any) {
		t.Helper()
		resp, data, err := p.apiRaw(method, path, "application/json", strings.NewReader(jsonBody(body)))
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(data, &e) != nil {
			t.Fatalf("%s %s with an unwritable file: %d %s %q, want 500 with a JSON error",
				method, path, resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		if !strings.Contains(e.Error, "could not save the configuration") || !strings.Contains(e.Error, "nothing was changed") {
			t.Errorf("%s %s: error %q does not say the configuration could not be saved and nothing changed", method, path, e.Error)
		}
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, e.Error)
	}
	// unchanged requires the configuration in force to be the original
	// one: no c1, w.example.com on a, routed to a1.
	unchanged := func(when string) {
		t.Helper()
		var bs []backendObj
		p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &bs)
		var ids []string
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		if !slices.Equal(ids, []string{"a1", "b1"}) {
			t.Errorf("%s: backends %v, want [a1 b1]", when, ids)
		}
		var d domainObj
		p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/w.example.com", nil, &d)
		if d.EnabledBackendsTag != "a" {
			t.Errorf("%s: w.example.com has tag %q, want a", when, d.EnabledBackendsTag)
		}
		if id := p.backendOf(t, "w.example.com"); id != "a1" {
			t.Errorf("%s: w.example.com went to %q, want a1", when, id)
		}
	}
	// noLeftovers requires the directory to hold the config file only.
	noLeftovers := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != filepath.Base(p.Config) && e.Name() != "acme-cache" {
				t.Errorf("%s: left beside the config file: %s", when, e.Name())
			}
		}
	}
	original := readFile(t, p.Config)

	// 1: the directory is gone.
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	failedWrite(http.MethodPost, "/backends", c1Body)
	failedWrite(http.MethodPost, "/domains/w.example.com/switch", map[string]string{"new_tag": "b"})
	failedWrite(http.MethodPost, "/domains", map[string]string{"domain": "x.example.com", "enabled_backends_tag": "a"})
	unchanged("with the directory gone")
	// A SIGHUP cannot read the file either: refused, and serving goes on.
	from := len(p.out.Lines())
	p.signal(t, syscall.SIGHUP)
	if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgHasPrefix("reload refused")); !ok {
		t.Fatal("no \"reload refused\" after SIGHUP with the file gone")
	}
	unchanged("after a SIGHUP with the directory gone")
	l.more(t, 50, "load with the directory gone")
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p.Config); string(got) != string(original) {
		t.Errorf("the config file changed although every write failed:\n%s", got)
	}
	noLeftovers("after the directory came back")

	// The same write now succeeds and is in the file.
	p.mustAPI(t, http.StatusCreated, http.MethodPost, "/backends", c1Body, nil)
	if ids := fileBackendIDs(t, p.Config); !slices.Equal(ids, []string{"a1", "b1", "c1"}) {
		t.Errorf("after the directory came back the file has backends %v, want [a1 b1 c1]", ids)
	}

	// 2: the file is a directory: the temporary file is written, the
	// rename over the file fails.
	saved := readFile(t, p.Config)
	if err := os.Remove(p.Config); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p.Config, 0o700); err != nil {
		t.Fatal(err)
	}
	failedWrite(http.MethodDelete, "/backends/c1", nil)
	failedWrite(http.MethodPost, "/domains/w.example.com/switch", map[string]string{"new_tag": "b"})
	if id := p.backendOf(t, "w.example.com"); id != "a1" {
		t.Errorf("with the file a directory w.example.com went to %q, want a1", id)
	}
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends/c1", nil, nil)
	if err := os.Remove(p.Config); err != nil {
		t.Fatal(err)
	}
	noLeftovers("after the failed rename") // the temporary file was removed
	writeFile(t, p.Config, string(saved))
	p.switchTag(t, "w.example.com", "b")
	p.mustAPI(t, http.StatusNoContent, http.MethodDelete, "/backends/c1", nil, nil)
	if ids := fileBackendIDs(t, p.Config); !slices.Equal(ids, []string{"a1", "b1"}) {
		t.Errorf("at the end the file has backends %v, want [a1 b1]", ids)
	}
	requireValid(t, p.Config)

	l.finish()
	if n := l.failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed while writes failed; first: %s", n, l.total.Load(), l.firstErr)
	}
	t.Logf("%d requests, none failed", l.total.Load())
}

// TestShutdownWithWebSocket sends SIGTERM with a WebSocket and an idle
// keep-alive connection open: the WebSocket is drained like a request in
// flight — it keeps working while new connections are refused — and once
// it closes the proxy exits 0 at once, well before shutdown_timeout_secs.
// (A WebSocket still open at the timeout is closed by the proxy: see
// proxy.TestUpgradesShutdown.)
func TestShutdownWithWebSocket(t *testing.T) {
	t.Parallel()
	a1 := startBackend(t, "a1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"ws.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a")},
	})
	kc := dialRaw(t, p)
	kc.get(t, "ws.example.com", "/")
	ws, _ := dialWebSocket(t, p, "ws.example.com")
	ws.echo(t, "before SIGTERM")

	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, msgIs("waiting for upgraded connections (WebSockets) to close"), "the drain to wait for the WebSocket")
	eventually(t, waitTimeout, func() bool { return dialRefused(p.HTTP) }, "new connections refused while draining")
	ws.echo(t, "during the drain")

	start := time.Now()
	ws.Close()
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM and the WebSocket's close, want 0", code)
	}
	if d := time.Since(start); d > 5*time.Second { // shutdown_timeout_secs is 10 (see conf)
		t.Errorf("exited %v after the last WebSocket closed; the drain should end with it", d)
	}
}

// jsonBody is body encoded as JSON, or nothing for nil.
func jsonBody(body any) string {
	if body == nil {
		return ""
	}
	return mustJSON(body)
}

// fileBackendIDs returns the ids of the [[backends]] in the config file.
func fileBackendIDs(t testing.TB, path string) []string {
	t.Helper()
	var file struct {
		Backends []struct {
			ID string `toml:"id"`
		} `toml:"backends"`
	}
	if err := toml.Unmarshal(readFile(t, path), &file); err != nil {
		t.Fatalf("config file: %v", err)
	}
	var ids []string
	for _, b := range file.Backends {
		ids = append(ids, b.ID)
	}
	return ids
}

// TestSIGHUPDuringAPIWrites sends SIGHUP (the file unchanged) right before
// API writes: every acknowledged write must stay in force and in the file.
//
// The reload reads the file under the store's lock (state.Store.Reload), so
// no write can be acknowledged between the read and the replacement.
func TestSIGHUPDuringAPIWrites(t *testing.T) {
	t.Parallel()
	p := newProxy(t, conf{})
	const n = 100
	undone := 0
	for i := range n {
		from := len(p.out.Lines())
		p.signal(t, syscall.SIGHUP)
		time.Sleep(time.Duration(i%20) * 100 * time.Microsecond) // land at varied points of the reload
		id := fmt.Sprintf("be-%03d", i)
		p.mustAPI(t, http.StatusCreated, http.MethodPost, "/backends",
			map[string]any{"id": id, "address": fmt.Sprintf("127.0.0.1:%d", 20000+i), "tags": []string{"t"}}, nil)
		if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgIs("configuration reloaded")); !ok {
			t.Fatal("no \"configuration reloaded\" after SIGHUP")
		}
		if p.api(t, http.MethodGet, "/backends/"+id, nil, nil) != http.StatusOK {
			undone++
		}
	}
	if undone > 0 {
		t.Errorf("%d of %d acknowledged writes were undone by a concurrent SIGHUP", undone, n)
	}
	var bs []backendObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &bs)
	if len(bs) != n {
		t.Errorf("%d backends in force after %d acknowledged writes", len(bs), n)
	}
	if ids := fileBackendIDs(t, p.Config); len(ids) != n {
		t.Errorf("%d backends in the file after %d acknowledged writes", len(ids), n)
	}
}
