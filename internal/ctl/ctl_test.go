package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Canned answers in the API's shapes (internal/admin).
const (
	domainsJSON = `[{"domain":"api.example.com","enabled_backends_tag":"b","http_to_https":false,"tls_enabled":false,"lb_policy":"least_conn"},` +
		`{"domain":"example.com","enabled_backends_tag":"a","http_to_https":true,"tls_enabled":true,"certificate_source":{"type":"file","cert_path":"/c.crt","key_path":"/c.key"},"canary":{"tag":"green","percent":10}}]`
	domainJSON   = `{"domain":"example.com","enabled_backends_tag":"green","http_to_https":true,"tls_enabled":true,"certificate_source":{"type":"file","cert_path":"/c.crt","key_path":"/c.key"}}`
	backendsJSON = `[{"id":"web-v1","address":"192.168.1.10:3000","tags":["a"],"healthy":true,"health":"healthy","last_check_at":"2025-01-02T03:04:05Z","last_error":"","consecutive_failures":0,"active_requests":0},` +
		`{"id":"web-v2","address":"192.168.1.11:3000","tags":["b"],"weight":3,"healthy":false,"health":"unhealthy","last_check_at":"2025-01-02T03:04:05Z","last_error":"dial tcp 192.168.1.11:3000: connection refused","consecutive_failures":3,"active_requests":1},` +
		`{"id":"spare","address":"spare.internal:8080","tags":[],"healthy":true,"health":"unknown","last_check_at":null,"last_error":"","consecutive_failures":0,"active_requests":0}]`
	backendJSONs = `{"id":"web-v3","address":"10.0.0.13:3000","tags":["green","blue"],"healthy":true,"health":"unknown","last_check_at":null,"last_error":"","consecutive_failures":0,"active_requests":0}`
	certsJSON    = `[{"domain":"example.com","expires_at":"2025-04-15T12:00:00Z","days_until_expiration":89,"source":"file","status":"valid","chains":[{"key_type":"ecdsa"},{"key_type":"rsa"}]},` +
		`{"domain":"shop.example.com","expires_at":null,"days_until_expiration":null,"source":"lets_encrypt","status":"pending"}]`
	clusterJSON = `{"store":"etcd","revision":42,"nodes":[{"name":"edge-1","api_addr":"10.0.0.1:9090","version":"v1.2.3","revision":42,"started_at":"2026-12-03T17:00:00Z","last_seen":"2026-12-03T17:59:57Z"}],"rollout_leader":"edge-1"}`
)

func rolloutJSONState(state string, step int, pct float64) string {
	return `{"domain":"example.com","from_tag":"a","to_tag":"green","steps":[10,50,100],"step_secs":60,"max_error_rate":0.01,"max_p99_ms":250,"min_requests":100,` +
		`"state":"` + state + `","step":` + itoa(step) + `,"percent":` + ftoa(pct) + `,"started_at":"2026-12-03T17:00:00Z","updated_at":"2026-12-03T17:01:00Z","next_step_at":null,` +
		`"canary":{"requests":120,"errors":1,"error_rate":0.008,"p99_ms":40.0919570922851558},"baseline":{"requests":1000,"errors":5,"error_rate":0.005,"p99_ms":35}}`
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }

type seen struct {
	method, path, query, body, auth, ctype string
}

// fakeAPI answers "METHOD /path" with a status and body, and records
// every request.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	answers map[string]func() (int, string)
	reqs    []seen
	srv     *httptest.Server
}

func newFake(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, answers: map[string]func() (int, string){}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type")})
		a, ok := f.answers[r.Method+" "+r.URL.EscapedPath()]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"domain \"nope.example\" not found"}`)
			return
		}
		code, body := a()
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) on(key string, code int, body string) {
	f.answers[key] = func() (int, string) { return code, body }
}

func (f *fakeAPI) last() seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		f.t.Fatal("no request")
	}
	return f.reqs[len(f.reqs)-1]
}

// run runs the CLI against the fake with FRONTTIER_API and FRONTTIER_TOKEN set.
func (f *fakeAPI) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &CLI{
		Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			switch k {
			case "FRONTTIER_API":
				return f.srv.URL
			case "FRONTTIER_TOKEN":
				return "s3cret"
			}
			return ""
		},
		ReadFile:      func(string) ([]byte, error) { return []byte("from-file\n"), nil },
		WatchInterval: time.Millisecond,
		Now:           func() time.Time { return time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC) },
	}
	code = c.Run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	f := newFake(t)
	f.on("GET /api/v1/domains", 200, domainsJSON)
	f.on("GET /api/v1/domains/example.com", 200, domainJSON)
	f.on("POST /api/v1/domains", 201, domainJSON)
	f.on("DELETE /api/v1/domains/example.com", 204, "")
	f.on("GET /api/v1/backends", 200, backendsJSON)
	f.on("GET /api/v1/backends/web-v3", 200, backendJSONs)
	f.on("POST /api/v1/backends", 201, backendJSONs)
	f.on("PUT /api/v1/backends/web-v3", 200, backendJSONs)
	f.on("DELETE /api/v1/backends/web-v3", 204, "")
	f.on("POST /api/v1/domains/example.com/switch", 200, domainJSON)
	f.on("PUT /api/v1/domains/example.com/canary", 200, domainsJSON[strings.Index(domainsJSON, `,{"domain":"example.com"`)+1:len(domainsJSON)-1])
	f.on("DELETE /api/v1/domains/example.com/canary", 200, domainJSON)
	f.on("POST /api/v1/domains/example.com/rollout", 201, rolloutJSONState("running", 0, 10))
	f.on("GET /api/v1/domains/example.com/rollout", 200, rolloutJSONState("running", 1, 50))
	for _, v := range []string{"pause", "resume", "promote", "abort"} {
		f.on("POST /api/v1/domains/example.com/rollout/"+v, 200, rolloutJSONState("paused", 1, 50))
	}
	f.on("GET /api/v1/certificates", 200, certsJSON)
	f.on("POST /api/v1/certificates/example.com/reload", 200, `{"message":"certificate reloaded","domain":"example.com"}`)
	f.on("POST /api/v1/certificates/shop.example.com/renew", 202, `{"domain":"shop.example.com","source":"lets_encrypt","status":"renewing","expires_at":null,"days_until_expiration":null}`)
	f.on("GET /api/v1/cluster", 200, clusterJSON)

	tests := []struct {
		args         []string
		method, path string
		query        string
		body         string // JSON, compared as values; "" for none
		want         []string
	}{
		{[]string{"domains", "ls"}, "GET", "/api/v1/domains", "", "",
			[]string{"DOMAIN", "TAG", "CANARY", "TLS", "api.example.com", "example.com", "green 10%", "on (file), redirect", "off"}},
		{[]string{"domains", "get", "example.com"}, "GET", "/api/v1/domains/example.com", "", "",
			[]string{"domain:", "tag:", "green", "/c.crt"}},
		{[]string{"domains", "add", "example.com", "green", "--tls", "--http-to-https", "--cert", "/c.crt", "--key", "/c.key"}, "POST", "/api/v1/domains", "",
			`{"domain":"example.com","enabled_backends_tag":"green","tls_enabled":true,"http_to_https":true,"certificate_source":{"type":"file","cert_path":"/c.crt","key_path":"/c.key"}}`,
			[]string{"example.com", "green"}},
		{[]string{"domains", "add", "--lets-encrypt", "example.com", "green", "--force"}, "POST", "/api/v1/domains", "",
			`{"domain":"example.com","enabled_backends_tag":"green","certificate_source":{"type":"lets_encrypt"},"force":true}`, nil},
		{[]string{"domains", "rm", "example.com"}, "DELETE", "/api/v1/domains/example.com", "", "", []string{"removed domain example.com"}},
		{[]string{"backends", "ls"}, "GET", "/api/v1/backends", "", "",
			[]string{"ID", "ADDRESS", "HEALTH", "LAST ERROR", "web-v1", "healthy", "unhealthy (3 failures)", "connection refused", "unknown"}},
		{[]string{"backends", "get", "web-v3"}, "GET", "/api/v1/backends/web-v3", "", "", []string{"address:", "10.0.0.13:3000", "green,blue"}},
		{[]string{"backends", "add", "web-v3", "10.0.0.13:3000", "--tags", "green, blue", "--weight", "2"}, "POST", "/api/v1/backends", "",
			`{"id":"web-v3","address":"10.0.0.13:3000","tags":["green","blue"],"weight":2}`, []string{"web-v3"}},
		{[]string{"backends", "set", "web-v3", "--tags", "green,blue"}, "PUT", "/api/v1/backends/web-v3", "", `{"tags":["green","blue"]}`, []string{"web-v3"}},
		{[]string{"backends", "set", "web-v3", "--address", "10.0.0.13:3000", "--weight", "0", "--force"}, "PUT", "/api/v1/backends/web-v3", "",
			`{"address":"10.0.0.13:3000","weight":0,"force":true}`, nil},
		{[]string{"backends", "rm", "web-v3", "--force"}, "DELETE", "/api/v1/backends/web-v3", "force=true", "", []string{"removed backend web-v3"}},
		{[]string{"switch", "example.com", "green"}, "POST", "/api/v1/domains/example.com/switch", "", `{"new_tag":"green"}`, []string{"example.com", "green"}},
		{[]string{"switch", "example.com", "green", "--force"}, "POST", "/api/v1/domains/example.com/switch", "", `{"new_tag":"green","force":true}`, nil},
		{[]string{"canary", "example.com", "green", "10", "--force"}, "PUT", "/api/v1/domains/example.com/canary", "", `{"tag":"green","percent":10,"force":true}`, []string{"green 10%"}},
		{[]string{"canary", "example.com", "green", "2.5%"}, "PUT", "/api/v1/domains/example.com/canary", "", `{"tag":"green","percent":2.5}`, nil},
		{[]string{"canary", "example.com", "--off"}, "DELETE", "/api/v1/domains/example.com/canary", "", "", []string{"example.com"}},
		{[]string{"rollout", "start", "example.com", "green", "--steps", "10,50,100", "--step-secs", "60", "--max-error-rate", "0.01", "--max-p99-ms", "250", "--min-requests", "100"},
			"POST", "/api/v1/domains/example.com/rollout", "",
			`{"to_tag":"green","steps":[10,50,100],"step_secs":60,"max_error_rate":0.01,"max_p99_ms":250,"min_requests":100}`,
			[]string{"a -> green", "running", "[10%]", "p99 <= 250ms", "p99 40.09ms"}},
		{[]string{"rollout", "status", "example.com"}, "GET", "/api/v1/domains/example.com/rollout", "", "", []string{"state:", "running", "2/3", "[50%]", "120 requests"}},
		{[]string{"rollout", "pause", "example.com"}, "POST", "/api/v1/domains/example.com/rollout/pause", "", "", []string{"paused"}},
		{[]string{"rollout", "resume", "example.com"}, "POST", "/api/v1/domains/example.com/rollout/resume", "", "", nil},
		{[]string{"rollout", "promote", "example.com"}, "POST", "/api/v1/domains/example.com/rollout/promote", "", "", nil},
		{[]string{"rollout", "abort", "example.com"}, "POST", "/api/v1/domains/example.com/rollout/abort", "", "", nil},
		{[]string{"certs", "ls"}, "GET", "/api/v1/certificates", "", "", []string{"DAYS LEFT", "KEYS", "ecdsa,rsa", "example.com", "valid", "89", "2025-04-15", "lets_encrypt", "pending"}},
		{[]string{"certs", "reload", "example.com"}, "POST", "/api/v1/certificates/example.com/reload", "", "", []string{"certificate reloaded"}},
		{[]string{"certs", "renew", "shop.example.com"}, "POST", "/api/v1/certificates/shop.example.com/renew", "", "", []string{"under way", "renewing"}},
		{[]string{"cluster"}, "GET", "/api/v1/cluster", "", "", []string{"store: etcd, revision 42", "rollout leader: edge-1", "NODE", "edge-1", "10.0.0.1:9090", "3s ago"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := f.run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			r := f.last()
			if r.method != tt.method || r.path != tt.path || r.query != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.query, tt.method, tt.path, tt.query)
			}
			if r.auth != "Bearer s3cret" {
				t.Errorf("Authorization %q", r.auth)
			}
			if tt.body == "" {
				if r.body != "" {
					t.Errorf("body %s, want none", r.body)
				}
			} else {
				if r.ctype != "application/json" {
					t.Errorf("Content-Type %q", r.ctype)
				}
				var got, want any
				if err := json.Unmarshal([]byte(r.body), &got); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
					t.Fatal(err)
				}
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want)
				if !bytes.Equal(gb, wb) {
					t.Errorf("body %s, want %s", gb, wb)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestJSONOutputIsTheAPIs(t *testing.T) {
	f := newFake(t)
	f.on("GET /api/v1/domains", 200, domainsJSON)
	f.on("GET /api/v1/backends", 200, backendsJSON)
	f.on("GET /api/v1/cluster", 200, clusterJSON)
	f.on("DELETE /api/v1/domains/example.com", 204, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "json", "domains", "ls"}, domainsJSON + "\n"},
		{[]string{"backends", "ls", "-o", "json"}, backendsJSON + "\n"},
		{[]string{"cluster", "-o=json"}, clusterJSON + "\n"},
		{[]string{"-o", "json", "domains", "rm", "example.com"}, ""},
	} {
		code, out, errs := f.run(t, tc.args...)
		if code != 0 || out != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errs, tc.want)
		}
	}
}

func TestTableLayout(t *testing.T) {
	f := newFake(t)
	f.on("GET /api/v1/domains", 200, domainsJSON)
	_, out, _ := f.run(t, "domains", "ls")
	want := "DOMAIN           TAG  CANARY     TLS\n" +
		"api.example.com  b    -          off\n" +
		"example.com      a    green 10%  on (file), redirect\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestAPIErrors(t *testing.T) {
	f := newFake(t)
	f.on("POST /api/v1/domains/example.com/switch", 409, `{"error":"no healthy backend carries tag \"green\" (use force)"}`)
	f.on("GET /api/v1/backends", 500, "oops, not JSON")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"domains", "get", "nope.example"}, `fronttier ctl domains get: domain "nope.example" not found (HTTP 404)`},
		{[]string{"-o", "json", "domains", "get", "nope.example"}, `domain "nope.example" not found (HTTP 404)`},
		{[]string{"switch", "example.com", "green"}, `no healthy backend carries tag "green" (use force) (HTTP 409)`},
		{[]string{"backends", "ls"}, "oops, not JSON (HTTP 500)"},
	} {
		code, out, errs := f.run(t, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, code, out, errs, tc.want)
		}
	}
	// Nothing listens: exit 1 too.
	var errb bytes.Buffer
	c := &CLI{Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := c.Run(context.Background(), []string{"--api", "127.0.0.1:1", "domains", "ls"}); code != 1 {
		t.Errorf("unreachable API: exit %d, %s", code, errb.String())
	}
}

func TestTokenAndAddress(t *testing.T) {
	f := newFake(t)
	f.on("GET /api/v1/cluster", 200, clusterJSON)
	if code, _, errs := f.run(t, "--token-file", "/etc/t", "cluster"); code != 0 {
		t.Fatal(errs)
	}
	if got := f.last().auth; got != "Bearer from-file" {
		t.Errorf("--token-file: Authorization %q", got)
	}
	// --api beats FRONTTIER_API, and a trailing /api/v1 is fine.
	var out, errb bytes.Buffer
	c := &CLI{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "FRONTTIER_API" {
			return "http://127.0.0.1:1"
		}
		return ""
	}}
	if code := c.Run(context.Background(), []string{"cluster", "--api", f.srv.URL + "/api/v1/"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := f.last().auth; got != "" {
		t.Errorf("no token: Authorization %q", got)
	}
	for addr, want := range map[string]string{
		"":                          "",
		"127.0.0.1:9090":            "http://127.0.0.1:9090/api/v1",
		"https://h.example/":        "https://h.example/api/v1",
		"http://h:1/prefix/api/v1/": "http://h:1/prefix/api/v1",
		"ftp://h":                   "",
	} {
		got, err := apiBase(addr)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("apiBase(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if b, _ := apiBase(DefaultAPI); b != "http://127.0.0.1:9090/api/v1" {
		t.Errorf("default %q", b)
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFake(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"domains"},
		{"domains", "frob"},
		{"domains", "get"},
		{"domains", "get", "a", "b"},
		{"domains", "ls", "--nope"},
		{"domains", "add", "example.com", "a", "--cert", "/c"},
		{"domains", "add", "example.com", "a", "--cert", "/c", "--key", "/k", "--lets-encrypt"},
		{"backends", "set", "web-v1"},
		{"switch", "example.com"},
		{"canary", "example.com", "green"},
		{"canary", "example.com", "green", "ten"},
		{"canary", "example.com", "green", "10", "--off"},
		{"rollout", "start", "example.com", "green", "--steps", "10,x"},
		{"rollout", "status"},
		{"-o", "yaml", "domains", "ls"},
		{"--bogus"},
	} {
		code, out, errs := f.run(t, args...)
		if code != 2 || out != "" || errs == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a message", args, code, out, errs)
		}
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
}

func TestHelpEverywhere(t *testing.T) {
	f := newFake(t)
	check := func(args ...string) string {
		t.Helper()
		code, out, errs := f.run(t, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "usage: fronttier ctl") || !strings.Contains(out, "example:\n  fronttier ctl") && !strings.Contains(out, "example:\n  FRONTTIER_TOKEN") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
		return out
	}
	top := check("--help")
	check("help")
	for _, g := range []string{"domains", "backends", "rollout", "certs"} {
		check(g, "--help")
	}
	for _, c := range commands {
		if !strings.Contains(top, c.path+" ") && !strings.HasSuffix(strings.TrimSpace(top), c.path) {
			t.Errorf("--help does not list %q", c.path)
		}
		args := append(strings.Fields(c.path), "--help")
		out := check(args...)
		if !strings.Contains(out, c.example) || !strings.Contains(out, "-api") {
			t.Errorf("%s --help:\n%s", c.path, out)
		}
		if !strings.Contains(c.example, "fronttier ctl "+c.path) {
			t.Errorf("%s: example %q does not use it", c.path, c.example)
		}
	}
	// -h after positional arguments too.
	check("switch", "example.com", "-h")
}

func TestStatusWatchEndsOnFinalState(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	n := 0
	f.answers["GET /api/v1/domains/example.com/rollout"] = func() (int, string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch {
		case n <= 2:
			return 200, rolloutJSONState("running", 0, 10)
		case n <= 4:
			return 200, rolloutJSONState("running", 1, 50)
		default:
			return 200, rolloutJSONState("completed", 2, 100)
		}
	}
	code, out, errs := f.run(t, "rollout", "status", "-w", "example.com")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n != 5 {
		t.Errorf("%d reads, want 5 (ends at the first final state)", n)
	}
	// Printed when it changed: three snapshots.
	if c := strings.Count(out, "state:"); c != 3 {
		t.Errorf("%d snapshots, want 3:\n%s", c, out)
	}
	if !strings.Contains(out, "completed") || strings.Index(out, "[10%]") > strings.Index(out, "[50%]") {
		t.Errorf("output:\n%s", out)
	}

	// JSON: one line per change.
	mu.Lock()
	n = 0
	mu.Unlock()
	code, out, _ = f.run(t, "-o", "json", "rollout", "status", "example.com", "-w")
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Errorf("json watch: exit %d:\n%s", code, out)
	}

	// A 404 ends it with exit 1.
	code, _, errs = f.run(t, "rollout", "status", "-w", "nope.example")
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("404: exit %d, %s", code, errs)
	}
}

func TestStatusWatchEndsWithContext(t *testing.T) {
	f := newFake(t)
	f.on("GET /api/v1/domains/example.com/rollout", 200, rolloutJSONState("running", 0, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	c := &CLI{Stdout: &out, Getenv: func(k string) string {
		if k == "FRONTTIER_API" {
			return f.srv.URL
		}
		return ""
	}, WatchInterval: 5 * time.Millisecond, Redraw: true}
	if code := c.Run(ctx, []string{"rollout", "status", "-w", "example.com"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "\033[H\033[2J") || strings.Count(out.String(), "state:") != 1 {
		t.Errorf("redraw output %q", out.String())
	}
}
