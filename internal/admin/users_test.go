package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"fronttier/internal/config"
)

// testUsers are the users of the role tests; each one's token is its name
// followed by "-token".
var testUsers = []struct {
	name, role string
	domains    []string
}{
	{name: "viewer", role: config.RoleViewer},
	{name: "operator", role: config.RoleOperator},
	{name: "scoped-op", role: config.RoleOperator, domains: []string{"*.example.com"}},
	{name: "admin", role: config.RoleAdmin},
	{name: "scoped-admin", role: config.RoleAdmin, domains: []string{"*.example.com"}},
}

// testUserOptions returns Options with testUsers and the single token
// "token-token" (the admin user "token").
func testUserOptions() Options {
	o := Options{Token: "token-token"}
	for _, u := range testUsers {
		sum := sha256.Sum256([]byte(u.name + "-token"))
		o.Users = append(o.Users, config.APIUser{Name: u.name, Role: u.role, Domains: u.domains, TokenSHA256: hex.EncodeToString(sum[:])})
	}
	return o
}

// TestRoles checks every role, with and without a domains limit, against
// every class of endpoint, on a domain in the limit (api.example.com) and
// one outside it (example.com).
func TestRoles(t *testing.T) {
	t.Parallel()
	const (
		all      = "viewer operator scoped-op admin scoped-admin token"
		opsIn    = "operator scoped-op admin scoped-admin token" // operators, on a domain in scope
		opsOut   = "operator admin token"                        // operators, on a domain outside it
		adminIn  = "admin scoped-admin token"
		adminAll = "admin token" // admins without a domains limit
	)
	tests := []struct {
		name    string
		req     request
		allowed string // the users allowed; the others get 403
	}{
		{name: "list domains", req: request{method: "GET", path: "/api/v1/domains"}, allowed: all},
		{name: "get a domain outside the scope", req: request{method: "GET", path: "/api/v1/domains/example.com"}, allowed: all},
		{name: "HEAD a backend", req: request{method: "HEAD", path: "/api/v1/backends/web-v1"}, allowed: all},
		{name: "list backends", req: request{method: "GET", path: "/api/v1/backends"}, allowed: all},
		{name: "certificates", req: request{method: "GET", path: "/api/v1/certificates"}, allowed: all},

		{name: "switch in scope", req: request{method: "POST", path: "/api/v1/domains/api.example.com/switch", body: `{"new_tag": "a"}`}, allowed: opsIn},
		{name: "switch in scope, other case", req: request{method: "POST", path: "/api/v1/domains/API.Example.COM/switch", body: `{"new_tag": "a"}`}, allowed: opsIn},
		{name: "switch outside the scope", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b"}`}, allowed: opsOut},
		{name: "switch a domain that does not exist", req: request{method: "POST", path: "/api/v1/domains/nope.test/switch", body: `{"new_tag": "b"}`}, allowed: opsOut},
		{name: "set a canary in scope", req: request{method: "PUT", path: "/api/v1/domains/api.example.com/canary", body: `{}`}, allowed: opsIn},
		{name: "delete a canary outside the scope", req: request{method: "DELETE", path: "/api/v1/domains/example.com/canary"}, allowed: opsOut},
		{name: "explain in scope", req: request{method: "POST", path: "/api/v1/domains/api.example.com/explain", body: `{}`}, allowed: opsIn},
		{name: "explain outside the scope", req: request{method: "POST", path: "/api/v1/domains/example.com/explain", body: `{}`}, allowed: opsOut},
		{name: "rollout action in scope", req: request{method: "POST", path: "/api/v1/domains/api.example.com/rollout/promote", body: `{}`}, allowed: opsIn},
		{name: "rollout start outside the scope", req: request{method: "POST", path: "/api/v1/domains/example.com/rollout", body: `{}`}, allowed: opsOut},
		{name: "reload a certificate in scope", req: request{method: "POST", path: "/api/v1/certificates/api.example.com/reload"}, allowed: opsIn},
		{name: "reload a certificate outside the scope", req: request{method: "POST", path: "/api/v1/certificates/example.com/reload"}, allowed: opsOut},
		{name: "renew a certificate in scope", req: request{method: "POST", path: "/api/v1/certificates/api.example.com/renew"}, allowed: opsIn},

		{name: "replace a domain in scope", req: request{method: "PUT", path: "/api/v1/domains/api.example.com", body: `{"enabled_backends_tag": "a"}`}, allowed: adminIn},
		{name: "delete a domain in scope", req: request{method: "DELETE", path: "/api/v1/domains/api.example.com"}, allowed: adminIn},
		{name: "delete a domain outside the scope", req: request{method: "DELETE", path: "/api/v1/domains/example.com"}, allowed: adminAll},
		{name: "add a domain in scope", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.example.com", "enabled_backends_tag": "a"}`}, allowed: adminIn},
		{name: "add a domain outside the scope", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.test", "enabled_backends_tag": "a"}`}, allowed: adminAll},
		{name: "add a backend", req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "n", "address": "10.0.0.9:80", "tags": ["a"]}`}, allowed: adminAll},
		{name: "replace a backend", req: request{method: "PUT", path: "/api/v1/backends/spare", body: `{"address": "10.0.0.9:80", "tags": []}`}, allowed: adminAll},
		{name: "delete a backend", req: request{method: "DELETE", path: "/api/v1/backends/spare"}, allowed: adminAll},
		{name: "write to an unknown path", req: request{method: "POST", path: "/api/v1/nope", body: `{}`}, allowed: adminAll},
		{name: "a method the path has not", req: request{method: "DELETE", path: "/api/v1/domains/api.example.com/switch"}, allowed: adminIn},
	}
	names := []string{"token"}
	for _, u := range testUsers {
		names = append(names, u.name)
	}
	for _, tt := range tests {
		for _, name := range names {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				e := newEnvWith(t, testUserOptions())
				req := tt.req
				req.header = map[string]string{"Authorization": "Bearer " + name + "-token"}
				before := e.store.Config()
				r := e.do(t, req)
				allowed := strings.Contains(" "+tt.allowed+" ", " "+name+" ")
				switch {
				case allowed && (r.code == http.StatusForbidden || r.code == http.StatusUnauthorized):
					t.Fatalf("%s %s as %s = %d %s, want it allowed", req.method, req.path, name, r.code, r.body)
				case !allowed && r.code != http.StatusForbidden:
					t.Fatalf("%s %s as %s = %d %s, want 403", req.method, req.path, name, r.code, r.body)
				case !allowed:
					checkJSONError(t, r)
					if !bytes.Contains(r.body, []byte(`\"`+name+`\"`)) {
						t.Errorf("403 answer does not name the user: %s", r.body)
					}
					if !bytes.Contains(r.body, []byte("needs role")) && !bytes.Contains(r.body, []byte("needs a user with role")) && !bytes.Contains(r.body, []byte("is not one of them")) {
						t.Errorf("403 answer does not say what would be needed: %s", r.body)
					}
					if e.store.Config() != before || e.p.Count() != 0 || e.certs.reloadedCount() != 0 {
						t.Error("a refused request changed something")
					}
				}
			})
		}
	}
}

func TestRolesUnauthenticated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		auth string
		want int
	}{
		{name: "no header", want: 401},
		{name: "unknown token", auth: "Bearer someone-token", want: 401},
		{name: "a user's hash as the token", auth: "Bearer " + testUserOptions().Users[0].TokenSHA256, want: 401},
		{name: "viewer", auth: "Bearer viewer-token", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, testUserOptions())
			req := request{method: "GET", path: "/api/v1/domains"}
			if tt.auth != "" {
				req.header = map[string]string{"Authorization": tt.auth}
			}
			r := e.do(t, req)
			if r.code != tt.want {
				t.Fatalf("= %d %s, want %d", r.code, r.body, tt.want)
			}
			if r.code == 401 {
				checkJSONError(t, r)
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			if h := e.do(t, request{method: "GET", path: "/api/v1/health"}); h.code != 200 {
				t.Errorf("health without a token = %d", h.code)
			}
		})
	}
}

// lockedBuffer is an audit log in memory.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the lines written so far, decoded.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditLog answers "who switched example.com to b, and when": one line
// per accepted change, none for reads, refusals or failures.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	audit := &lockedBuffer{}
	o := testUserOptions()
	o.Users = append(o.Users, config.APIUser{Name: "ops", Role: config.RoleOperator, TokenSHA256: hashHex("ops-token")})
	o.Audit = audit
	e := newEnvWith(t, o)
	as := func(user string, r request) response {
		r.header = map[string]string{"Authorization": "Bearer " + user + "-token"}
		return e.do(t, r)
	}
	steps := []struct {
		user string
		req  request
		code int
	}{
		{user: "viewer", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b"}`}, code: 403},
		{user: "ops", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "nosuchtag"}`}, code: 409},
		{user: "ops", req: request{method: "GET", path: "/api/v1/domains/example.com"}, code: 200},
		{user: "ops", req: request{method: "POST", path: "/api/v1/domains/example.com/explain", body: `{}`}, code: 200},
		{user: "ops", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b", "force": true}`}, code: 200},
		{user: "admin", req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.test", "enabled_backends_tag": "a"}`}, code: 201},
		{user: "admin", req: request{method: "DELETE", path: "/api/v1/backends/spare"}, code: 204},
		{user: "ops", req: request{method: "POST", path: "/api/v1/certificates/example.com/reload"}, code: 200},
	}
	for _, s := range steps {
		if r := as(s.user, s.req); r.code != s.code {
			t.Fatalf("%s %s as %s = %d %s, want %d", s.req.method, s.req.path, s.user, r.code, r.body, s.code)
		}
	}
	recs := audit.records(t)
	if len(recs) != 4 {
		t.Fatalf("audit log has %d lines, want 4: %v", len(recs), recs)
	}
	sw := recs[0]
	if sw["user"] != "ops" || sw["method"] != "POST" || sw["path"] != "/api/v1/domains/example.com/switch" || sw["remote_addr"] == "" || sw["time"] == "" {
		t.Errorf("switch line = %v", sw)
	}
	tag := func(v any) any {
		m, _ := v.(map[string]any)
		return m["enabled_backends_tag"]
	}
	if tag(sw["before"]) != "a" || tag(sw["after"]) != "b" {
		t.Errorf("switch line before/after = %v / %v, want tag a then b", sw["before"], sw["after"])
	}
	add := recs[1]
	if add["user"] != "admin" || add["before"] != nil || tag(add["after"]) != "a" {
		t.Errorf("add line = %v", add)
	}
	del := recs[2]
	if m, _ := del["before"].(map[string]any); del["user"] != "admin" || m["id"] != "spare" || del["after"] != nil {
		t.Errorf("delete line = %v", del)
	}
	if cert := recs[3]; cert["user"] != "ops" || cert["before"] != nil || cert["after"] != nil {
		t.Errorf("reload line = %v", cert)
	}
}

// TestAuditLogAnonymous: without users, changes are logged as made by
// "anonymous".
func TestAuditLogAnonymous(t *testing.T) {
	t.Parallel()
	audit := &lockedBuffer{}
	e := newEnvWith(t, Options{Audit: audit})
	if r := e.do(t, request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "b", "force": true}`}); r.code != 200 {
		t.Fatalf("switch = %d %s", r.code, r.body)
	}
	if recs := audit.records(t); len(recs) != 1 || recs[0]["user"] != anonymousUser {
		t.Fatalf("audit log = %v", recs)
	}
}

func hashHex(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
