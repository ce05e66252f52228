package admin

import (
	"bytes"
	"net/http"
	"testing"
)

func TestAuthorization(t *testing.T) {
	t.Parallel()
	const token = "Zm9v-YmFy.secret_token~42"
	addDomain := `{"domain": "new.example.com", "enabled_backends_tag": "a"}`
	tests := []struct {
		name     string
		token    string // the API's token; "" means none
		req      request
		auth     string // Authorization header; "" sends none
		wantCode int
	}{
		{name: "no token configured, no header", req: request{method: "GET", path: "/api/v1/domains"}, wantCode: 200},
		{name: "no token configured, any header", req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer whatever", wantCode: 200},

		{name: "health is open", token: token, req: request{method: "GET", path: "/api/v1/health"}, wantCode: 200},
		{name: "health HEAD is open", token: token, req: request{method: "HEAD", path: "/api/v1/health"}, wantCode: 200},
		{name: "health with a wrong token is open", token: token, req: request{method: "GET", path: "/api/v1/health"}, auth: "Bearer nope", wantCode: 200},
		{name: "health POST needs the token", token: token, req: request{method: "POST", path: "/api/v1/health", body: "{}"}, wantCode: 401},
		{name: "health by another path needs the token", token: token, req: request{method: "GET", path: "/api/v1//health"}, wantCode: 401},

		{name: "list without header", token: token, req: request{method: "GET", path: "/api/v1/domains"}, wantCode: 401},
		{name: "list with the token", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer " + token, wantCode: 200},
		{name: "scheme is case-insensitive", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "bearer " + token, wantCode: 200},
		{name: "extra spaces", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer   " + token, wantCode: 200},
		{name: "wrong token", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer wrong", wantCode: 401},
		{name: "token prefix", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer " + token[:10], wantCode: 401},
		{name: "token plus a character", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer " + token + "x", wantCode: 401},
		{name: "token in other case", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer ZM9V-YMFY.SECRET_TOKEN~42", wantCode: 401},
		{name: "scheme only", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer", wantCode: 401},
		{name: "empty token", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Bearer ", wantCode: 401},
		{name: "token without scheme", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: token, wantCode: 401},
		{name: "basic auth", token: token, req: request{method: "GET", path: "/api/v1/domains"}, auth: "Basic dXNlcjpwYXNz", wantCode: 401},
		{name: "token in the query is not accepted", token: token, req: request{method: "GET", path: "/api/v1/domains?access_token=" + token}, wantCode: 401},

		{name: "metrics need the token", token: token, req: request{method: "GET", path: "/api/v1/metrics"}, wantCode: 401},
		{name: "certificates need the token", token: token, req: request{method: "GET", path: "/api/v1/certificates"}, wantCode: 401},
		{name: "unknown path needs the token", token: token, req: request{method: "GET", path: "/api/v1/nope"}, wantCode: 401},
		{name: "unknown path with the token", token: token, req: request{method: "GET", path: "/api/v1/nope"}, auth: "Bearer " + token, wantCode: 404},
		{name: "add without token", token: token, req: request{method: "POST", path: "/api/v1/domains", body: addDomain}, wantCode: 401},
		{name: "add with a wrong token", token: token, req: request{method: "POST", path: "/api/v1/domains", body: addDomain}, auth: "Bearer x", wantCode: 401},
		{name: "add with the token", token: token, req: request{method: "POST", path: "/api/v1/domains", body: addDomain}, auth: "Bearer " + token, wantCode: 201},
		{name: "switch without token", token: token, req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`}, wantCode: 401},
		{name: "delete without token", token: token, req: request{method: "DELETE", path: "/api/v1/backends/spare"}, wantCode: 401},
		{name: "delete with the token", token: token, req: request{method: "DELETE", path: "/api/v1/backends/spare"}, auth: "Bearer " + token, wantCode: 204},
		{name: "reload without token", token: token, req: request{method: "POST", path: "/api/v1/certificates/example.com/reload"}, wantCode: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, Options{Token: tt.token})
			if tt.auth != "" {
				tt.req.header = map[string]string{"Authorization": tt.auth}
			}
			before := e.store.Config()
			r := e.do(t, tt.req)
			if r.code != tt.wantCode {
				t.Fatalf("%s %s (Authorization %q) = %d %s, want %d", tt.req.method, tt.req.path, tt.auth, r.code, r.body, tt.wantCode)
			}
			if bytes.Contains(r.body, []byte(token)) {
				t.Errorf("answer reveals the token: %s", r.body)
			}
			if r.code != http.StatusUnauthorized {
				return
			}
			checkJSONError(t, r)
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="fronttier"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if e.store.Config() != before || e.p.Count() != 0 {
				t.Error("an unauthorised request changed the configuration")
			}
			if e.certs.reloadedCount() != 0 {
				t.Error("an unauthorised request reloaded a certificate")
			}
		})
	}
}
