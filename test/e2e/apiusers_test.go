package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// asUser sends a management API request with token as its bearer token
// ("" sends none) and returns the status and body.
func (p *proxyProc) asUser(t testing.TB, token, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+p.API+apiBase+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// TestAPIUsers runs the binary with a viewer, an operator limited to
// *.example.com and the admin token, and checks who may do what and that
// the audit log names who made each accepted change.
func TestAPIUsers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const (
		adminToken  = "admin-e2e-token"
		opsToken    = "ops-e2e-token"
		viewerToken = "viewer-e2e-token"
	)
	opsFile := filepath.Join(dir, "ops.token")
	writeFile(t, opsFile, opsToken+"\n")
	sum := sha256.Sum256([]byte(viewerToken))
	auditPath := filepath.Join(dir, "log", "audit.log")
	c := conf{
		Domains: []domainConf{{Domain: "a.example.com", Tag: "a"}, {Domain: "other.test", Tag: "a"}},
		// Unreachable backends: the switches below are forced.
		Backends:   []backendConf{{ID: "b1", Addr: "127.0.0.1:9", Tags: []string{"a"}}, {ID: "b2", Addr: "127.0.0.1:9", Tags: []string{"b"}}},
		ProxyExtra: fmt.Sprintf("management_api_token = %q\n", adminToken),
		Extra: fmt.Sprintf("\n[[api_users]]\nname = \"ops\"\ntoken_file = %q\nrole = \"operator\"\ndomains = [\"*.example.com\"]\n"+
			"\n[[api_users]]\nname = \"watcher\"\ntoken_sha256 = %q\nrole = \"viewer\"\n", opsFile, hex.EncodeToString(sum[:])),
	}
	path := filepath.Join(dir, "config.toml")
	c.CacheDir = filepath.Join(dir, "acme-cache")
	doc := strings.Replace(c.String(), "access_log = false\n", fmt.Sprintf("access_log = false\naudit_log_path = %q\n", auditPath), 1)
	writeFile(t, path, doc)
	p := startProxy(t, path)

	switchTo := func(tag string) string { return fmt.Sprintf(`{"new_tag": %q, "force": true}`, tag) }
	steps := []struct {
		name, token, method, path, body string
		want                            int
	}{
		{name: "no token", method: "GET", path: "/domains", want: 401},
		{name: "health needs none", method: "GET", path: "/health", want: 200},
		{name: "viewer reads", token: viewerToken, method: "GET", path: "/domains", want: 200},
		{name: "viewer cannot switch", token: viewerToken, method: "POST", path: "/domains/a.example.com/switch", body: switchTo("b"), want: 403},
		{name: "operator switches in its domains", token: opsToken, method: "POST", path: "/domains/a.example.com/switch", body: switchTo("b"), want: 200},
		{name: "operator cannot switch outside its domains", token: opsToken, method: "POST", path: "/domains/other.test/switch", body: switchTo("b"), want: 403},
		{name: "operator cannot add a backend", token: opsToken, method: "POST", path: "/backends", body: `{"id": "b3", "address": "127.0.0.1:9", "tags": ["c"]}`, want: 403},
		{name: "admin adds a backend", token: adminToken, method: "POST", path: "/backends", body: `{"id": "b3", "address": "127.0.0.1:9", "tags": ["c"]}`, want: 201},
		{name: "admin switches anything", token: adminToken, method: "POST", path: "/domains/other.test/switch", body: switchTo("b"), want: 200},
	}
	for _, s := range steps {
		code, body := p.asUser(t, s.token, s.method, s.path, s.body)
		if code != s.want {
			t.Fatalf("%s: %s %s = %d %s, want %d", s.name, s.method, s.path, code, body, s.want)
		}
		if code == 401 || code == 403 {
			var e map[string]string
			if err := json.Unmarshal(body, &e); err != nil || e["error"] == "" {
				t.Errorf("%s: error body %s is not {\"error\": ...}", s.name, body)
			}
		}
	}

	lines := strings.Split(strings.TrimSpace(string(readFile(t, auditPath))), "\n")
	type record struct {
		User, Method, Path, RemoteAddr, Time string
		Before, After                        map[string]any
	}
	var recs []record
	for _, l := range lines {
		var r struct {
			User       string         `json:"user"`
			Method     string         `json:"method"`
			Path       string         `json:"path"`
			RemoteAddr string         `json:"remote_addr"`
			Time       string         `json:"time"`
			Before     map[string]any `json:"before"`
			After      map[string]any `json:"after"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		recs = append(recs, record(r))
	}
	if len(recs) != 3 {
		t.Fatalf("audit log has %d lines, want 3 (one per accepted change):\n%s", len(recs), strings.Join(lines, "\n"))
	}
	want := []struct{ user, path string }{
		{"ops", "/api/v1/domains/a.example.com/switch"},
		{"token", "/api/v1/backends"},
		{"token", "/api/v1/domains/other.test/switch"},
	}
	for i, w := range want {
		r := recs[i]
		if r.User != w.user || r.Method != "POST" || r.Path != w.path || r.RemoteAddr == "" || r.Time == "" {
			t.Errorf("audit line %d = %+v, want user %s on %s", i, r, w.user, w.path)
		}
	}
	if recs[0].Before["enabled_backends_tag"] != "a" || recs[0].After["enabled_backends_tag"] != "b" {
		t.Errorf("the switch's before/after = %v / %v", recs[0].Before, recs[0].After)
	}
	if recs[1].Before != nil || recs[1].After["id"] != "b3" {
		t.Errorf("the add's before/after = %v / %v", recs[1].Before, recs[1].After)
	}
	// The changes were written back to the file with its users intact.
	if saved := readFile(t, path); bytes.Count(saved, []byte("[[api_users]]")) != 2 || bytes.Contains(saved, []byte(opsToken)) {
		t.Errorf("the written-back file lost its users or holds a token:\n%s", saved)
	}
	all := append(readFile(t, auditPath), p.out.String()...)
	for _, tok := range []string{adminToken, opsToken, viewerToken} {
		if bytes.Contains(all, []byte(tok)) {
			t.Errorf("a token shows in the audit log or the process output")
		}
	}
}
