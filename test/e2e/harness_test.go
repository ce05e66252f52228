// Package e2e drives the real fronttier and testbackend binaries as
// subprocesses, on loopback only, the way a new user would: write a
// configuration file, start the proxy, talk to its management API with JSON,
// send requests through it, signal it.
//
// The harness in this file builds both binaries once (TestMain), starts and
// stops processes (every one is killed in t.Cleanup), learns the proxy's
// bound addresses from its JSON log, and offers polling helpers: nothing
// here synchronises with time.Sleep.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths of the binaries built by TestMain.
var (
	fronttierBin   string
	testbackendBin string
)

// Timeouts of the harness. They are generous ceilings, not delays: every
// wait returns as soon as its condition holds.
const (
	startTimeout = 20 * time.Second // a process binds its listeners
	exitTimeout  = 15 * time.Second // a signalled process exits
	waitTimeout  = 10 * time.Second // an asynchronous effect shows
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fronttier-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	fronttierBin = filepath.Join(dir, "fronttier")
	testbackendBin = filepath.Join(dir, "testbackend")
	for bin, pkg := range map[string]string{
		fronttierBin:   "fronttier/cmd/fronttier",
		testbackendBin: "fronttier/cmd/testbackend",
	} {
		cmd := exec.Command(goTool(), "build", "-o", bin, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}

// goTool is the go command: the one on PATH, else the one in $GOROOT/bin.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// eventually polls cond every 20ms until it returns true, failing the test
// if it has not within timeout. msg describes the condition.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, msg ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s", timeout, fmt.Sprint(msg...))
		}
		<-tick.C
	}
}

// ---------------------------------------------------------------------------
// Output capture

// logCapture collects a process's output line by line and lets tests wait
// for a line.
type logCapture struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogCapture() *logCapture { return &logCapture{changed: make(chan struct{})} }

// Write implements io.Writer (exec copies the process's output into it).
func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, string(c.partial[:i]))
		c.partial = c.partial[i+1:]
		added = true
	}
	if added {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	return len(p), nil
}

// Lines returns the complete lines so far.
func (c *logCapture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// String returns everything captured, including an unterminated last line.
func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n") + "\n" + string(c.partial)
}

// waitFor returns the first line, from the line numbered from on, that
// matches, and its number. It gives up (ok false) after timeout or, if stop
// is not nil, when stop is closed and no further line matches.
func (c *logCapture) waitFor(from int, timeout time.Duration, stop <-chan struct{}, match func(line string) bool) (line string, n int, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	stopped := false
	for {
		c.mu.Lock()
		for ; from < len(c.lines); from++ {
			if match(c.lines[from]) {
				l := c.lines[from]
				c.mu.Unlock()
				return l, from, true
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if stopped {
			return "", from, false
		}
		select {
		case <-ch:
		case <-timer.C:
			return "", from, false
		case <-stop:
			// Output is complete once the process is waited for; look
			// once more.
			stopped, stop = true, nil
		}
	}
}

// jsonLine decodes a JSON log line; ok is false for other lines.
func jsonLine(line string) (m map[string]any, ok bool) {
	if !strings.HasPrefix(strings.TrimSpace(line), "{") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, false
	}
	return m, true
}

// msgIs matches JSON log lines whose "msg" is msg.
func msgIs(msg string) func(string) bool {
	return func(line string) bool {
		m, ok := jsonLine(line)
		return ok && m["msg"] == msg
	}
}

// msgHasPrefix matches JSON log lines whose "msg" starts with prefix.
func msgHasPrefix(prefix string) func(string) bool {
	return func(line string) bool {
		m, ok := jsonLine(line)
		if !ok {
			return false
		}
		s, _ := m["msg"].(string)
		return strings.HasPrefix(s, prefix)
	}
}

// ---------------------------------------------------------------------------
// Processes

// process is a started subprocess whose exit is watched.
type process struct {
	cmd  *exec.Cmd
	out  *logCapture // stdout and stderr, interleaved
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

func startProcess(t testing.TB, bin string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, bin, args...)
}

// startProcessEnv is startProcess with env added to the environment.
func startProcessEnv(t testing.TB, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{out: newLogCapture(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL (if still running) and waits for the exit.
func (p *process) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// signal sends sig to the process.
func (p *process) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to timeout for the exit and returns the exit code.
func (p *process) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process %s did not exit within %v", p.cmd.Path, timeout)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("wait: %v", p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// ---------------------------------------------------------------------------
// Test backends

// backendProc is a running testbackend.
type backendProc struct {
	*process
	ID   string // the ID it reports in X-Backend-Id
	Addr string // 127.0.0.1:port
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (and is closed now).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startBackend starts a testbackend reporting id, with extra flags (such as
// "-delay", "1s"), on a free port, and waits for its /health to answer.
func startBackend(t testing.TB, id string, flags ...string) *backendProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		args := append(append([]string{}, flags...), port, id)
		b := &backendProc{process: startProcess(t, testbackendBin, args...), ID: id, Addr: addr}
		if b.waitHealthy() {
			return b
		}
		b.kill()
		if attempt == 5 {
			t.Fatalf("testbackend %s did not start:\n%s", id, b.out.String())
		}
		t.Logf("testbackend %s on %s did not start (port taken?), retrying", id, addr)
	}
}

// waitHealthy waits until the backend's own /health answers with its id
// (whatever the status).
// It returns false if the process exits first or startTimeout passes.
func (b *backendProc) waitHealthy() bool {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if b.exited() {
			return false
		}
		resp, err := client.Get("http://" + b.Addr + "/health")
		if err == nil {
			var h struct {
				BackendID string `json:"backend_id"`
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			// Another process may have taken the port: check it is ours
			// and that ours is still alive.
			// (A backend started with -health-status answers non-2xx.)
			if err == nil && h.BackendID == b.ID && !b.exited() {
				return true
			}
		}
		select {
		case <-tick.C:
		case <-b.done:
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Configuration files

// conf is a configuration file for a test: loopback listeners on port 0,
// JSON logs, fast health checks.
type conf struct {
	Domains   []domainConf
	Backends  []backendConf
	Metrics   bool // enable the dedicated metrics listener
	AccessLog bool
	// CacheDir is [lets_encrypt] cache_dir; writeConfig sets it beside the
	// file when empty, so that no test creates the default "acme-cache"
	// in the working directory.
	CacheDir string
	// ProxyExtra is TOML added to the [proxy] section.
	ProxyExtra string
	// Pprof turns on the [debug] pprof listener.
	Pprof bool
	// Extra is TOML appended as is: sections of its own ([cluster]).
	Extra string
}

type domainConf struct{ Domain, Tag string }

type backendConf struct {
	ID, Addr string
	Tags     []string
}

// be is a backendConf for a running testbackend.
func be(id string, b *backendProc, tags ...string) backendConf {
	return backendConf{ID: id, Addr: b.Addr, Tags: tags}
}

func (c conf) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, `[proxy]
listen_addr_http = "127.0.0.1:0"
management_api_addr = "127.0.0.1:0"
shutdown_timeout_secs = 10
%s
[logging]
level = "info"
format = "json"
output = "console"
access_log = %t

[metrics]
enabled = %t
listen_addr = "127.0.0.1:0"

[health_check]
interval_secs = 1
timeout_secs = 1
`, c.ProxyExtra, c.AccessLog, c.Metrics)
	if c.Pprof {
		s.WriteString("\n[debug]\npprof_addr = \"127.0.0.1:0\"\n")
	}
	if c.CacheDir != "" {
		fmt.Fprintf(&s, "\n[lets_encrypt]\ncache_dir = %q\n", c.CacheDir)
	}
	s.WriteString(c.Extra)
	for _, d := range c.Domains {
		fmt.Fprintf(&s, "\n[[virtual_hosts]]\ndomain = %q\nenabled_backends_tag = %q\n", d.Domain, d.Tag)
	}
	for _, b := range c.Backends {
		tags := make([]string, len(b.Tags))
		for i, t := range b.Tags {
			tags[i] = strconv.Quote(t)
		}
		fmt.Fprintf(&s, "\n[[backends]]\nid = %q\naddress = %q\ntags = [%s]\n", b.ID, b.Addr, strings.Join(tags, ", "))
	}
	return s.String()
}

// writeConfig writes c to config.toml in a new temporary directory.
func writeConfig(t testing.TB, c conf) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(dir, "acme-cache")
	}
	writeFile(t, path, c.String())
	return path
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// The proxy

// proxyProc is a running fronttier.
type proxyProc struct {
	*process
	t       testing.TB
	Config  string // the --config file
	HTTP    string // addresses of its listeners
	HTTPS   string // "" unless listen_addr is set
	API     string
	Metrics string // "" unless [metrics] is enabled
	Pprof   string // "" unless [debug] pprof_addr is set
	client  *http.Client
}

// newProxy writes c and starts a proxy on it.
func newProxy(t testing.TB, c conf) *proxyProc {
	t.Helper()
	return startProxy(t, writeConfig(t, c))
}

// startProxy runs fronttier --config path and waits until it has bound its
// listeners and logged "fronttier started"; it learns the listeners'
// addresses from the "listening" log lines.
func startProxy(t testing.TB, path string) *proxyProc {
	t.Helper()
	return startProxyEnv(t, path, nil)
}

// startProxyEnv is startProxy with env added to the proxy's environment.
func startProxyEnv(t testing.TB, path string, env []string) *proxyProc {
	t.Helper()
	p := &proxyProc{process: startProcessEnv(t, env, fronttierBin, "--config", path), t: t, Config: path}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}
	p.client = &http.Client{Transport: tr, Timeout: 60 * time.Second,
		// Redirects (HTTP -> HTTPS) are the proxy's answer under test.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if t.Failed() {
			t.Logf("fronttier output (%s):\n%s", path, tail(p.out.String(), 150))
		}
	})
	if _, _, ok := p.out.waitFor(0, startTimeout, p.done, msgIs("fronttier started")); !ok {
		p.kill()
		t.Fatalf("fronttier did not start:\n%s", p.out.String())
	}
	for _, line := range p.out.Lines() {
		m, ok := jsonLine(line)
		if !ok || m["msg"] != "listening" {
			continue
		}
		addr, _ := m["addr"].(string)
		switch m["listener"] {
		case "http":
			p.HTTP = addr
		case "https":
			p.HTTPS = addr
		case "api":
			p.API = addr
		case "metrics":
			p.Metrics = addr
		case "pprof":
			p.Pprof = addr
		}
	}
	if p.HTTP == "" || p.API == "" {
		t.Fatalf("fronttier did not log its http and api addresses:\n%s", p.out.String())
	}
	return p
}

// restart starts a new proxy on p's configuration file; p must have
// exited (the caller stops or kills it first).
func (p *proxyProc) restart(t testing.TB) *proxyProc {
	t.Helper()
	if !p.exited() {
		t.Fatal("restart: the old proxy is still running")
	}
	return startProxy(t, p.Config)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitLog waits for a log line matching match, from the start of the log.
func (p *proxyProc) waitLog(t testing.TB, match func(string) bool, what string) string {
	t.Helper()
	line, _, ok := p.out.waitFor(0, waitTimeout, p.done, match)
	if !ok {
		t.Fatalf("fronttier did not log %s", what)
	}
	return line
}

// request sends a request through the proxy's HTTP listener with the given
// Host header and returns the response with its body read.
func (p *proxyProc) request(method, host, path string, body io.Reader, hdr http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, "http://"+p.HTTP+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// get is request GET that fails the test on a transport error.
func (p *proxyProc) get(t testing.TB, host, path string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := p.request(http.MethodGet, host, path, nil, nil)
	if err != nil {
		t.Fatalf("GET http://%s%s (Host %s): %v", p.HTTP, path, host, err)
	}
	return resp, body
}

// echoReply is the testbackend's answer to a plain request.
type echoReply struct {
	BackendID string            `json:"backend_id"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	URI       string            `json:"uri"`
	Query     string            `json:"query"`
	Host      string            `json:"host"`
	Headers   map[string]string `json:"headers"`
	BodyBytes int64             `json:"body_bytes"`
}

// getEcho sends GET through the proxy, requires 200 and returns the
// backend's echo.
func (p *proxyProc) getEcho(t testing.TB, host, path string) echoReply {
	t.Helper()
	resp, body := p.get(t, host, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s (Host %s): status %d, body %q", path, host, resp.StatusCode, body)
	}
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("GET %s (Host %s): not an echo: %v: %q", path, host, err, body)
	}
	if got := resp.Header.Get("X-Backend-Id"); got != e.BackendID {
		t.Fatalf("X-Backend-Id %q but echo says backend_id %q", got, e.BackendID)
	}
	return e
}

// backendOf sends GET / through the proxy and returns the X-Backend-Id of
// the answer, or "" if it was not a 200.
func (p *proxyProc) backendOf(t testing.TB, host string) string {
	t.Helper()
	resp, _ := p.get(t, host, "/")
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("X-Backend-Id")
}
