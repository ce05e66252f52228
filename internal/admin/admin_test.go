package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/state"

	"fronttier/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeCerts is a Certificates with one entry; Reload fails with err.
type fakeCerts struct {
	mu       sync.Mutex
	err      error
	reloaded []string
}

func (c *fakeCerts) List() any {
	return []map[string]any{{
		"domain": "example.com", "expires_at": "2025-04-15T12:00:00Z", "days_until_expiration": 89, "source": "file",
	}}
}

func (c *fakeCerts) Reload(domain string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.reloaded = append(c.reloaded, domain)
	return nil
}

func (c *fakeCerts) reloadedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reloaded)
}

func ptr[T any](v T) *T { return &v }

// lastCheck is the fixed time of web-v2's last (failed) check.
var lastCheck = time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CST", 8*3600))

// testConfig: example.com (tag a, file certificate) and api.example.com
// (tag b, least_conn); web-v1 on a, web-v2 on b (unhealthy), web-v3 on
// green, spare on no tag.
func testConfig() *config.Config {
	c := config.Default()
	c.Proxy.ListenAddr = "0.0.0.0:443"
	c.Proxy.ListenAddrHTTP = "0.0.0.0:80"
	c.VirtualHosts = []config.VirtualHost{
		{
			Domain: "example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(true),
			CertificateSource: &config.CertificateSource{Type: config.SourceFile, CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"},
		},
		{Domain: "api.example.com", EnabledBackendsTag: "b", LBPolicy: config.PolicyLeastConn},
	}
	c.Backends = []config.Backend{
		{ID: "web-v1", Address: "192.168.1.10:3000", Tags: []string{"a"}},
		{ID: "web-v2", Address: "192.168.1.11:3000", Tags: []string{"b"}, Weight: 3},
		{ID: "web-v3", Address: "192.168.1.12:3000", Tags: []string{"green"}},
		{ID: "spare", Address: "spare.internal:8080", Tags: []string{}},
	}
	return c
}

type env struct {
	srv   *httptest.Server
	store *state.Store
	p     *testutil.Persister
	certs *fakeCerts
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, Options{})
}

// newEnvWith is newEnv with extra options (Store, Certs and Metrics are
// always the environment's).
func newEnvWith(t *testing.T, o Options) *env {
	t.Helper()
	e := &env{p: &testutil.Persister{}, certs: &fakeCerts{}}
	var err error
	e.store, err = state.New(testConfig(), backend.NewRegistry(nil, nil), e.p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.store.Backend("web-v1")
	v1.SetHealth(backend.Healthy)
	v1.SetStatus(backend.Status{LastCheck: lastCheck, ConsecutivePasses: 2})
	v2 := e.store.Backend("web-v2")
	v2.SetHealth(backend.Unhealthy)
	v2.SetStatus(backend.Status{LastCheck: lastCheck, LastError: "dial tcp 192.168.1.11:3000: connection refused", ConsecutiveFailures: 3})
	v2.Acquire()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# TYPE proxy_requests_total counter\nproxy_requests_total 1234\n")
	})
	o.Store, o.Certs, o.Metrics = e.store, e.certs, metrics
	e.srv = httptest.NewServer(New(o))
	t.Cleanup(e.srv.Close)
	return e
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// request describes one API call. An empty contentType with a body sends
// application/json; "-" sends none.
type request struct {
	method      string
	path        string
	body        string
	contentType string
	// header holds extra request headers.
	header map[string]string
}

func (e *env) do(t *testing.T, r request) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, e.srv.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.contentType == "-":
	case r.contentType != "":
		req.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	client := *e.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) get(t *testing.T, path string) response {
	t.Helper()
	return e.do(t, request{method: http.MethodGet, path: path})
}

// checkGolden compares got with testdata/name, or rewrites the file with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("body differs from %s:\n got: %s\nwant: %s", path, got, want)
	}
}

// checkJSONError checks an error answer: JSON content type and a body that
// is exactly {"error": "..."}.
func checkJSONError(t *testing.T, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	msg, ok := body["error"].(string)
	if len(body) != 1 || !ok || msg == "" {
		t.Errorf("error body = %s, want {\"error\": \"message\"}", r.body)
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	big := `{"domain": "` + strings.Repeat("a", maxBody) + `", "enabled_backends_tag": "a"}`
	tests := []struct {
		name string
		req  request
		// setup runs before the request.
		setup      func(e *env)
		wantCode   int
		wantAllow  string // checked when not empty
		wantHeader map[string]string
		// golden names the file the body must equal; "" skips.
		golden string
		// check runs after the request.
		check func(t *testing.T, e *env, r response)
	}{
		// Health, metrics, unknown paths.
		{name: "health", req: request{method: "GET", path: "/api/v1/health"}, wantCode: 200,
			check: func(t *testing.T, _ *env, r response) {
				if string(r.body) != "OK" {
					t.Errorf("body = %q, want OK", r.body)
				}
			}},
		{name: "health POST", req: request{method: "POST", path: "/api/v1/health", body: "{}"}, wantCode: 405, wantAllow: "GET, HEAD"},
		{name: "metrics", req: request{method: "GET", path: "/api/v1/metrics"}, wantCode: 200,
			check: func(t *testing.T, _ *env, r response) {
				if !strings.Contains(string(r.body), "proxy_requests_total 1234") {
					t.Errorf("metrics body = %q", r.body)
				}
			}},
		{name: "unknown path", req: request{method: "GET", path: "/nope"}, wantCode: 404, golden: "error_unknown_path.json"},
		{name: "unknown API path", req: request{method: "GET", path: "/api/v1/nope"}, wantCode: 404},
		{name: "unknown path POST", req: request{method: "POST", path: "/api/v2/domains", body: "{}"}, wantCode: 404},
		{name: "root", req: request{method: "GET", path: "/"}, wantCode: 404},
		{name: "domain path with empty name", req: request{method: "GET", path: "/api/v1/domains/"}, wantCode: 404},
		{name: "too deep", req: request{method: "GET", path: "/api/v1/domains/example.com/switch/x"}, wantCode: 404},

		// Domains.
		{name: "list domains", req: request{method: "GET", path: "/api/v1/domains"}, wantCode: 200, golden: "domains_list.json"},
		{name: "get domain", req: request{method: "GET", path: "/api/v1/domains/example.com"}, wantCode: 200, golden: "domain_get.json"},
		{name: "get domain other case", req: request{method: "GET", path: "/api/v1/domains/EXAMPLE.com."}, wantCode: 200, golden: "domain_get.json"},
		{name: "get missing domain", req: request{method: "GET", path: "/api/v1/domains/nope.example.com"}, wantCode: 404, golden: "error_domain_not_found.json"},
		{name: "add domain", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "New.Example.com", "enabled_backends_tag": "a", "http_to_https": true}`},
			wantCode: 201, golden: "domain_created.json", wantHeader: map[string]string{"Location": "/api/v1/domains/new.example.com"},
			check: func(t *testing.T, e *env, _ response) {
				if h := e.store.Table().Lookup("new.example.com"); h == nil || h.Tag != "a" {
					t.Errorf("new domain not routed: %+v", h)
				}
				if e.p.Last().Host("new.example.com") == nil {
					t.Error("new domain not persisted")
				}
			}},
		{name: "add domain with tls and certificate", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "shop.example.com", "enabled_backends_tag": "a", "tls_enabled": true, "certificate_source": {"type": "lets_encrypt"}}`},
			wantCode: 201, golden: "domain_created_lets_encrypt.json"},
		{name: "add domain charset", req: request{method: "POST", path: "/api/v1/domains", contentType: "application/json; charset=utf-8",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a"}`}, wantCode: 201},
		{name: "add domain without content type", req: request{method: "POST", path: "/api/v1/domains", contentType: "-",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a"}`}, wantCode: 201},
		{name: "add duplicate domain", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "example.com", "enabled_backends_tag": "b"}`}, wantCode: 409, golden: "error_domain_exists.json"},
		{name: "add invalid domain", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "bad_domain.com", "enabled_backends_tag": "a"}`}, wantCode: 400},
		{name: "add IP as domain", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "10.0.0.1", "enabled_backends_tag": "a"}`}, wantCode: 400},
		{name: "add domain missing fields", req: request{method: "POST", path: "/api/v1/domains", body: `{}`}, wantCode: 400, golden: "error_missing_fields.json"},
		{name: "add domain bad certificate source", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a", "certificate_source": {"type": "file"}}`}, wantCode: 400},
		{name: "add domain certificate source unknown field", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a", "certificate_source": {"type": "file", "path": "/x"}}`}, wantCode: 400},
		{name: "malformed JSON", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": `}, wantCode: 400},
		{name: "syntax error", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain" "x"}`}, wantCode: 400, golden: "error_malformed_json.json"},
		{name: "unknown field", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a", "bogus": 1}`}, wantCode: 400, golden: "error_unknown_field.json"},
		{name: "wrong type", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a", "http_to_https": "yes"}`}, wantCode: 400, golden: "error_wrong_type.json"},
		{name: "trailing data", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a"} {}`}, wantCode: 400},
		{name: "trailing garbage", req: request{method: "POST", path: "/api/v1/domains",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a"}]`}, wantCode: 400},
		{name: "array body", req: request{method: "POST", path: "/api/v1/domains", body: `[]`}, wantCode: 400},
		{name: "empty body", req: request{method: "POST", path: "/api/v1/domains", contentType: "application/json"}, wantCode: 400},
		{name: "not JSON content type", req: request{method: "POST", path: "/api/v1/domains", contentType: "text/plain",
			body: `{"domain": "x.example.com", "enabled_backends_tag": "a"}`}, wantCode: 415, golden: "error_unsupported_media_type.json"},
		{name: "form content type", req: request{method: "POST", path: "/api/v1/domains", contentType: "application/x-www-form-urlencoded",
			body: `domain=x.example.com`}, wantCode: 415},
		{name: "body too large", req: request{method: "POST", path: "/api/v1/domains", body: big}, wantCode: 413, golden: "error_too_large.json"},
		{name: "domains PATCH", req: request{method: "PATCH", path: "/api/v1/domains", body: `{}`}, wantCode: 405, wantAllow: "GET, HEAD, POST", golden: "error_method_not_allowed.json"},
		{name: "domains DELETE", req: request{method: "DELETE", path: "/api/v1/domains"}, wantCode: 405, wantAllow: "GET, HEAD, POST"},
		{name: "domain POST", req: request{method: "POST", path: "/api/v1/domains/example.com", body: `{}`}, wantCode: 405, wantAllow: "DELETE, GET, HEAD, PUT"},

		{name: "update domain partially", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"http_to_https": false}`},
			wantCode: 200, golden: "domain_updated.json"},
		{name: "update domain tag", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"enabled_backends_tag": "green"}`},
			wantCode: 200, check: func(t *testing.T, e *env, _ response) {
				if h := e.store.Table().Lookup("example.com"); h.Tag != "green" {
					t.Errorf("tag = %q, want green", h.Tag)
				}
			}},
		{name: "update domain tag without backends", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"enabled_backends_tag": "nobody"}`},
			wantCode: 409},
		{name: "update domain tag without backends, forced", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"enabled_backends_tag": "nobody", "force": true}`},
			wantCode: 200},
		{name: "update domain rename", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"domain": "other.example.com"}`},
			wantCode: 400},
		{name: "update domain same name", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"domain": "example.com"}`},
			wantCode: 200},
		{name: "update domain bad policy", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"lb_policy": "random"}`},
			wantCode: 400},
		{name: "update domain bad certificate source", req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"certificate_source": {"type": 5}}`},
			wantCode: 400},
		{name: "update missing domain", req: request{method: "PUT", path: "/api/v1/domains/nope.example.com", body: `{"http_to_https": false}`},
			wantCode: 404},
		{name: "update domain not JSON", req: request{method: "PUT", path: "/api/v1/domains/example.com", contentType: "text/xml", body: `<x/>`},
			wantCode: 415},
		{name: "delete domain", req: request{method: "DELETE", path: "/api/v1/domains/example.com"}, wantCode: 204,
			check: func(t *testing.T, e *env, r response) {
				if len(r.body) != 0 {
					t.Errorf("204 with body %q", r.body)
				}
				if e.store.Table().Lookup("example.com") != nil {
					t.Error("example.com still routed")
				}
				if got := e.get(t, "/api/v1/domains/example.com").code; got != 404 {
					t.Errorf("GET after DELETE = %d, want 404", got)
				}
			}},
		{name: "delete missing domain", req: request{method: "DELETE", path: "/api/v1/domains/nope.example.com"}, wantCode: 404},

		// Switch.
		{name: "switch", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`},
			wantCode: 200, golden: "switch.json", check: func(t *testing.T, e *env, _ response) {
				h := e.store.Table().Lookup("example.com")
				if h.Tag != "green" || len(h.Pool.Backends) != 1 || h.Pool.Backends[0].ID != "web-v3" {
					t.Errorf("after switch host = %+v", h)
				}
				if e.p.Last().Host("example.com").EnabledBackendsTag != "green" {
					t.Error("switch not persisted")
				}
			}},
		{name: "switch to tag without backends", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "c"}`},
			wantCode: 409, golden: "error_switch_no_backend.json"},
		{name: "switch to tag without backends, forced", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "c", "force": true}`},
			wantCode: 200},
		{name: "switch to unhealthy tag", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b"}`},
			wantCode: 409, golden: "error_switch_unhealthy.json"},
		{name: "switch to unhealthy tag, forced", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b", "force": true}`},
			wantCode: 200},
		{name: "switch without new_tag", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{}`},
			wantCode: 400, golden: "error_switch_missing_tag.json"},
		{name: "switch invalid tag", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "a b"}`},
			wantCode: 400},
		{name: "switch missing domain", req: request{method: "POST", path: "/api/v1/domains/nope.example.com/switch", body: `{"new_tag": "a"}`},
			wantCode: 404},
		{name: "switch GET", req: request{method: "GET", path: "/api/v1/domains/example.com/switch"}, wantCode: 405, wantAllow: "POST"},
		{name: "switch not JSON", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", contentType: "text/plain", body: "green"},
			wantCode: 415},

		// Backends.
		{name: "list backends", req: request{method: "GET", path: "/api/v1/backends"}, wantCode: 200, golden: "backends_list.json"},
		{name: "get backend", req: request{method: "GET", path: "/api/v1/backends/web-v2"}, wantCode: 200, golden: "backend_get.json"},
		{name: "get missing backend", req: request{method: "GET", path: "/api/v1/backends/nope"}, wantCode: 404, golden: "error_backend_not_found.json"},
		{name: "add backend", req: request{method: "POST", path: "/api/v1/backends",
			body: `{"id": "web-v4", "address": "192.168.1.13:3000", "tags": ["a"]}`},
			wantCode: 201, golden: "backend_created.json", wantHeader: map[string]string{"Location": "/api/v1/backends/web-v4"},
			check: func(t *testing.T, e *env, _ response) {
				if h := e.store.Table().Lookup("example.com"); h.Pool.Len() != 2 {
					t.Errorf("example.com pool has %d members, want 2", h.Pool.Len())
				}
			}},
		{name: "add backend without tags", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "x", "address": "x.internal:80"}`},
			wantCode: 201, check: func(t *testing.T, _ *env, r response) {
				if !bytes.Contains(r.body, []byte(`"tags": []`)) {
					t.Errorf("tags not an empty list: %s", r.body)
				}
			}},
		{name: "add duplicate backend", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "web-v1", "address": "192.168.1.99:3000"}`},
			wantCode: 409},
		{name: "add backend missing fields", req: request{method: "POST", path: "/api/v1/backends", body: `{"tags": ["a"]}`},
			wantCode: 400},
		{name: "add backend bad address", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "x", "address": "192.168.1.13"}`},
			wantCode: 400, golden: "error_backend_invalid.json"},
		{name: "add backend bad id", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "x y", "address": "192.168.1.13:80"}`},
			wantCode: 400},
		{name: "add backend tags wrong type", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "x", "address": "h:1", "tags": "a"}`},
			wantCode: 400},
		{name: "add backend not JSON", req: request{method: "POST", path: "/api/v1/backends", contentType: "text/plain", body: `{}`},
			wantCode: 415},
		{name: "add backend too large", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "` + strings.Repeat("x", maxBody) + `"}`},
			wantCode: 413},
		{name: "update backend address", req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"address": "192.168.1.11:3001"}`},
			wantCode: 200, golden: "backend_updated.json"},
		{name: "update backend orphans a domain", req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"tags": ["z"]}`},
			wantCode: 409},
		{name: "update backend orphans a domain, forced", req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"tags": ["z"], "force": true}`},
			wantCode: 200},
		{name: "update backend rename", req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"id": "web-v9"}`},
			wantCode: 400},
		{name: "update backend invalid", req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"address": "nope"}`},
			wantCode: 400},
		{name: "update missing backend", req: request{method: "PUT", path: "/api/v1/backends/nope", body: `{"address": "h:1"}`},
			wantCode: 404},
		{name: "delete backend", req: request{method: "DELETE", path: "/api/v1/backends/spare"}, wantCode: 204,
			check: func(t *testing.T, e *env, r response) {
				if len(r.body) != 0 {
					t.Errorf("204 with body %q", r.body)
				}
				if e.store.Backend("spare") != nil {
					t.Error("spare still live")
				}
			}},
		{name: "delete last backend of a tag", req: request{method: "DELETE", path: "/api/v1/backends/web-v1"}, wantCode: 409, golden: "error_delete_orphans.json"},
		{name: "delete last backend of a tag, forced", req: request{method: "DELETE", path: "/api/v1/backends/web-v1?force=true"}, wantCode: 204,
			check: func(t *testing.T, e *env, _ response) {
				if e.store.Config().Backend("web-v1") != nil {
					t.Error("web-v1 still configured")
				}
				if h := e.store.Table().Lookup("example.com"); h.Pool.Len() != 0 {
					t.Errorf("example.com pool has %d members", h.Pool.Len())
				}
			}},
		{name: "delete backend force=1", req: request{method: "DELETE", path: "/api/v1/backends/web-v1?force=1"}, wantCode: 204},
		{name: "delete backend force=false", req: request{method: "DELETE", path: "/api/v1/backends/web-v1?force=false"}, wantCode: 409},
		{name: "delete backend bad force", req: request{method: "DELETE", path: "/api/v1/backends/web-v1?force=maybe"}, wantCode: 400},
		{name: "delete missing backend", req: request{method: "DELETE", path: "/api/v1/backends/nope"}, wantCode: 404},
		{name: "backends PUT", req: request{method: "PUT", path: "/api/v1/backends", body: `{}`}, wantCode: 405, wantAllow: "GET, HEAD, POST"},
		{name: "backend PATCH", req: request{method: "PATCH", path: "/api/v1/backends/web-v1", body: `{}`}, wantCode: 405, wantAllow: "DELETE, GET, HEAD, PUT"},

		// Certificates.
		{name: "list certificates", req: request{method: "GET", path: "/api/v1/certificates"}, wantCode: 200, golden: "certificates_list.json"},
		{name: "reload certificate", req: request{method: "POST", path: "/api/v1/certificates/Example.com/reload"}, wantCode: 200, golden: "certificate_reload.json",
			check: func(t *testing.T, e *env, _ response) {
				if got := strings.Join(e.certs.reloaded, ","); got != "example.com" {
					t.Errorf("reloaded %q, want example.com", got)
				}
			}},
		{name: "reload certificate fails", req: request{method: "POST", path: "/api/v1/certificates/example.com/reload"},
			setup: func(e *env) { e.certs.err = errors.New("parse certificate: bad PEM") }, wantCode: 500},
		{name: "reload unknown certificate", req: request{method: "POST", path: "/api/v1/certificates/nope.example.com/reload"},
			setup: func(e *env) { e.certs.err = fmt.Errorf("%w: no certificate for nope.example.com", state.ErrNotFound) }, wantCode: 404},
		{name: "reload GET", req: request{method: "GET", path: "/api/v1/certificates/example.com/reload"}, wantCode: 405, wantAllow: "POST"},
		{name: "certificates POST", req: request{method: "POST", path: "/api/v1/certificates", body: "{}"}, wantCode: 405, wantAllow: "GET, HEAD"},

		// Persistence failure: 500, nothing changed.
		{name: "persist failure on add", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.example.com", "enabled_backends_tag": "a"}`},
			setup: func(e *env) { e.p.SetErr(errors.New("write config.toml: no space left on device")) }, wantCode: 500, golden: "error_persist.json",
			check: func(t *testing.T, e *env, _ response) {
				if e.store.Config().Host("new.example.com") != nil || e.store.Table().Lookup("new.example.com") != nil {
					t.Error("domain added although it was not saved")
				}
			}},
		{name: "persist failure on switch", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`},
			setup: func(e *env) { e.p.SetErr(errors.New("disk full")) }, wantCode: 500,
			check: func(t *testing.T, e *env, _ response) {
				if got := e.store.Table().Lookup("example.com").Tag; got != "a" {
					t.Errorf("tag = %q after failed switch, want a", got)
				}
			}},
		{name: "persist failure on delete", req: request{method: "DELETE", path: "/api/v1/backends/spare"},
			setup: func(e *env) { e.p.SetErr(errors.New("disk full")) }, wantCode: 500,
			check: func(t *testing.T, e *env, _ response) {
				if e.store.Backend("spare") == nil {
					t.Error("spare removed although the change was not saved")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			before := e.store.Config()
			r := e.do(t, tt.req)
			if r.code != tt.wantCode {
				t.Fatalf("%s %s = %d %s, want %d", tt.req.method, tt.req.path, r.code, r.body, tt.wantCode)
			}
			if tt.wantAllow != "" {
				if got := r.header.Get("Allow"); got != tt.wantAllow {
					t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
				}
			}
			for k, v := range tt.wantHeader {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			switch {
			case r.code >= 400:
				checkJSONError(t, r)
				// A refused request changes nothing.
				if e.store.Config() != before {
					t.Error("configuration replaced by a failed request")
				}
			case r.code == 200 || r.code == 201:
				if ct := r.header.Get("Content-Type"); ct != "application/json" && !strings.HasPrefix(tt.req.path, "/api/v1/health") && !strings.HasPrefix(tt.req.path, "/api/v1/metrics") {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
			}
			if tt.golden != "" {
				checkGolden(t, tt.golden, r.body)
			}
			if tt.check != nil {
				tt.check(t, e, r)
			}
		})
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		path     string
		wantCode int
	}{
		{path: "/api/v1/health", wantCode: 200},
		{path: "/api/v1/metrics", wantCode: 200},
		{path: "/api/v1/domains", wantCode: 200},
		{path: "/api/v1/domains/example.com", wantCode: 200},
		{path: "/api/v1/domains/nope.example.com", wantCode: 404},
		{path: "/api/v1/backends", wantCode: 200},
		{path: "/api/v1/backends/web-v1", wantCode: 200},
		{path: "/api/v1/certificates", wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			head := e.do(t, request{method: http.MethodHead, path: tt.path})
			if head.code != tt.wantCode {
				t.Fatalf("HEAD %s = %d, want %d", tt.path, head.code, tt.wantCode)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD %s has a body: %q", tt.path, head.body)
			}
			get := e.get(t, tt.path)
			if got, want := head.header.Get("Content-Type"), get.header.Get("Content-Type"); got != want {
				t.Errorf("HEAD Content-Type = %q, GET has %q", got, want)
			}
		})
	}
}

// TestPartialUpdate checks that PUT changes only the fields it names.
func TestPartialUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	steps := []struct {
		name string
		body string
		want domainJSON
	}{
		{
			name: "tag only",
			body: `{"enabled_backends_tag": "green"}`,
			want: domainJSON{Domain: "example.com", EnabledBackendsTag: "green", HTTPToHTTPS: true, TLSEnabled: true,
				CertificateSource: &config.CertificateSource{Type: "file", CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"}},
		},
		{
			name: "redirect only",
			body: `{"http_to_https": false}`,
			want: domainJSON{Domain: "example.com", EnabledBackendsTag: "green", HTTPToHTTPS: false, TLSEnabled: true,
				CertificateSource: &config.CertificateSource{Type: "file", CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"}},
		},
		{
			name: "policy and tls",
			body: `{"lb_policy": "weighted", "tls_enabled": false}`,
			want: domainJSON{Domain: "example.com", EnabledBackendsTag: "green", HTTPToHTTPS: false, TLSEnabled: false, LBPolicy: "weighted",
				CertificateSource: &config.CertificateSource{Type: "file", CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"}},
		},
		{
			name: "empty object changes nothing",
			body: `{}`,
			want: domainJSON{Domain: "example.com", EnabledBackendsTag: "green", HTTPToHTTPS: false, TLSEnabled: false, LBPolicy: "weighted",
				CertificateSource: &config.CertificateSource{Type: "file", CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"}},
		},
	}
	for _, s := range steps {
		r := e.do(t, request{method: "PUT", path: "/api/v1/domains/example.com", body: s.body})
		if r.code != 200 {
			t.Fatalf("%s: PUT = %d %s", s.name, r.code, r.body)
		}
		for _, body := range [][]byte{r.body, e.get(t, "/api/v1/domains/example.com").body} {
			var got domainJSON
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, s.want) {
				t.Errorf("%s: domain = %+v %+v, want %+v %+v", s.name, got, got.CertificateSource, s.want, s.want.CertificateSource)
			}
		}
	}
	h := e.store.Table().Lookup("example.com")
	if h.Redirect || h.TLS || h.Tag != "green" {
		t.Errorf("route host = %+v", h)
	}

	// Backends: an address change keeps tags and weight.
	r := e.do(t, request{method: "PUT", path: "/api/v1/backends/web-v2", body: `{"address": "192.168.1.21:3000"}`})
	if r.code != 200 {
		t.Fatalf("PUT backend = %d %s", r.code, r.body)
	}
	b := e.store.Config().Backend("web-v2")
	if b.Address != "192.168.1.21:3000" || len(b.Tags) != 1 || b.Tags[0] != "b" || b.Weight != 3 {
		t.Errorf("backend after address change = %+v", b)
	}
	var got backendJSON
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	// A new address is a new backend: its health starts over.
	if got.Health != "unknown" || !got.Healthy || got.LastCheckAt != nil || got.ActiveRequests != 0 {
		t.Errorf("health after address change = %+v", got)
	}
	// A tags change keeps the address.
	r = e.do(t, request{method: "PUT", path: "/api/v1/backends/web-v2", body: `{"tags": ["b", "canary"], "weight": 0}`})
	if r.code != 200 {
		t.Fatalf("PUT backend tags = %d %s", r.code, r.body)
	}
	b = e.store.Config().Backend("web-v2")
	if b.Address != "192.168.1.21:3000" || len(b.Tags) != 2 || b.Weight != 0 {
		t.Errorf("backend after tags change = %+v", b)
	}
}

func TestCertificateSourceSetAndRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	steps := []struct {
		name   string
		domain string
		body   string
		want   *config.CertificateSource
	}{
		{name: "set on a host without one", domain: "api.example.com",
			body: `{"certificate_source": {"type": "file", "cert_path": "/c.pem", "key_path": "/k.pem"}}`,
			want: &config.CertificateSource{Type: "file", CertPath: "/c.pem", KeyPath: "/k.pem"}},
		{name: "absent keeps it", domain: "api.example.com", body: `{"http_to_https": true}`,
			want: &config.CertificateSource{Type: "file", CertPath: "/c.pem", KeyPath: "/k.pem"}},
		{name: "replace with lets_encrypt", domain: "api.example.com", body: `{"certificate_source": {"type": "lets_encrypt"}}`,
			want: &config.CertificateSource{Type: "lets_encrypt"}},
		{name: "null removes it", domain: "api.example.com", body: `{"certificate_source": null}`, want: nil},
		{name: "null removes a file source", domain: "example.com", body: `{"certificate_source": null}`, want: nil},
	}
	for _, s := range steps {
		r := e.do(t, request{method: "PUT", path: "/api/v1/domains/" + s.domain, body: s.body})
		if r.code != 200 {
			t.Fatalf("%s: PUT = %d %s", s.name, r.code, r.body)
		}
		get := e.get(t, "/api/v1/domains/"+s.domain)
		if !bytes.Equal(get.body, r.body) {
			t.Errorf("%s: GET after PUT differs:\n%s\n%s", s.name, get.body, r.body)
		}
		var got domainJSON
		if err := json.Unmarshal(get.body, &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.CertificateSource) != fmt.Sprint(s.want) {
			t.Errorf("%s: certificate_source = %+v, want %+v", s.name, got.CertificateSource, s.want)
		}
		if s.want == nil && bytes.Contains(get.body, []byte("certificate_source")) {
			t.Errorf("%s: removed source still shown: %s", s.name, get.body)
		}
		saved := e.p.Last().Host(s.domain).CertificateSource
		if fmt.Sprint(saved) != fmt.Sprint(s.want) {
			t.Errorf("%s: persisted certificate_source = %+v, want %+v", s.name, saved, s.want)
		}
	}
}

func TestPersistFailureKeepsAPIState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	domainsBefore := e.get(t, "/api/v1/domains").body
	backendsBefore := e.get(t, "/api/v1/backends").body
	cfgBefore := e.store.Config()
	e.p.SetErr(errors.New("read-only file system"))
	changes := []request{
		{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.example.com", "enabled_backends_tag": "a"}`},
		{method: "PUT", path: "/api/v1/domains/example.com", body: `{"http_to_https": false}`},
		{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`},
		{method: "DELETE", path: "/api/v1/domains/example.com"},
		{method: "POST", path: "/api/v1/backends", body: `{"id": "web-v9", "address": "10.0.0.9:80"}`},
		{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"address": "10.0.0.10:80"}`},
		{method: "DELETE", path: "/api/v1/backends/spare"},
	}
	for _, c := range changes {
		r := e.do(t, c)
		if r.code != 500 {
			t.Errorf("%s %s with failing persister = %d, want 500", c.method, c.path, r.code)
		}
		checkJSONError(t, r)
		if !bytes.Contains(r.body, []byte("nothing was changed")) || !bytes.Contains(r.body, []byte("read-only file system")) {
			t.Errorf("%s %s error body = %s", c.method, c.path, r.body)
		}
	}
	if e.store.Config() != cfgBefore {
		t.Error("configuration replaced")
	}
	if got := e.get(t, "/api/v1/domains").body; !bytes.Equal(got, domainsBefore) {
		t.Errorf("domains changed:\n%s\n%s", got, domainsBefore)
	}
	if got := e.get(t, "/api/v1/backends").body; !bytes.Equal(got, backendsBefore) {
		t.Errorf("backends changed:\n%s\n%s", got, backendsBefore)
	}
	if e.p.Count() != len(changes) {
		t.Errorf("persister called %d times, want %d", e.p.Count(), len(changes))
	}
}

func TestNoCertificatesOrMetrics(t *testing.T) {
	t.Parallel()
	store, err := state.New(testConfig(), backend.NewRegistry(nil, nil), &testutil.Persister{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Store: store}))
	defer srv.Close()
	e := &env{srv: srv, store: store}
	tests := []struct {
		req      request
		wantCode int
		wantBody string
	}{
		{req: request{method: "GET", path: "/api/v1/certificates"}, wantCode: 200, wantBody: "[]\n"},
		{req: request{method: "POST", path: "/api/v1/certificates/example.com/reload"}, wantCode: 404},
		{req: request{method: "GET", path: "/api/v1/metrics"}, wantCode: 404},
	}
	for _, tt := range tests {
		r := e.do(t, tt.req)
		if r.code != tt.wantCode {
			t.Errorf("%s %s = %d, want %d", tt.req.method, tt.req.path, r.code, tt.wantCode)
		}
		if tt.wantBody != "" && string(r.body) != tt.wantBody {
			t.Errorf("%s %s body = %q, want %q", tt.req.method, tt.req.path, r.body, tt.wantBody)
		}
		if r.code >= 400 {
			checkJSONError(t, r)
		}
	}
}

// TestManualWorkflow follows the manual's API section from an empty
// configuration: add backends and a domain, list them, switch, delete.
func TestManualWorkflow(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Proxy.ListenAddrHTTP = ":80"
	p := &testutil.Persister{}
	store, err := state.New(c, backend.NewRegistry(nil, nil), p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Store: store}))
	defer srv.Close()
	e := &env{srv: srv, store: store, p: p}
	steps := []struct {
		req      request
		wantCode int
		golden   string
	}{
		{req: request{method: "GET", path: "/api/v1/domains"}, wantCode: 200, golden: "workflow_empty.json"},
		{req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "web-v1", "address": "192.168.1.10:3000", "tags": ["a"]}`}, wantCode: 201},
		{req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "web-v2", "address": "192.168.1.11:3000", "tags": ["b"]}`}, wantCode: 201},
		{req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "example.com", "enabled_backends_tag": "a", "http_to_https": true}`}, wantCode: 201},
		{req: request{method: "GET", path: "/api/v1/domains"}, wantCode: 200, golden: "workflow_domains.json"},
		{req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b"}`}, wantCode: 200, golden: "workflow_switch.json"},
		{req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "a"}`}, wantCode: 200},
		{req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"enabled_backends_tag": "b"}`}, wantCode: 200},
		{req: request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"address": "192.168.1.11:3000"}`}, wantCode: 200},
		{req: request{method: "GET", path: "/api/v1/backends"}, wantCode: 200, golden: "workflow_backends.json"},
		{req: request{method: "DELETE", path: "/api/v1/backends/web-v1"}, wantCode: 204},
		{req: request{method: "DELETE", path: "/api/v1/domains/example.com"}, wantCode: 204},
		{req: request{method: "DELETE", path: "/api/v1/backends/web-v2"}, wantCode: 204},
		{req: request{method: "GET", path: "/api/v1/backends"}, wantCode: 200, golden: "workflow_empty.json"},
	}
	for i, s := range steps {
		r := e.do(t, s.req)
		if r.code != s.wantCode {
			t.Fatalf("step %d: %s %s = %d %s, want %d", i, s.req.method, s.req.path, r.code, r.body, s.wantCode)
		}
		if s.golden != "" {
			checkGolden(t, s.golden, r.body)
		}
	}
	if got := p.Count(); got != len(steps)-4 {
		t.Errorf("persister called %d times, want %d (once per change)", got, len(steps)-4)
	}
}
