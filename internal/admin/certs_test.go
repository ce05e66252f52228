package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

// fakeRenewer is a Certificates that can renew: acme.example.com is an
// ACME domain, file.example.com has a file certificate, nothing else
// exists.
type fakeRenewer struct {
	fakeCerts
	mu      sync.Mutex
	renewed []string
}

var _ CertificateRenewer = (*fakeRenewer)(nil)

func (f *fakeRenewer) Renew(domain string) (any, error) {
	switch domain {
	case "acme.example.com":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.renewed = append(f.renewed, domain)
		return map[string]any{"domain": domain, "source": "lets_encrypt", "status": "renewing"}, nil
	case "file.example.com":
		return nil, &Error{Code: http.StatusConflict, Msg: "the certificate of \"file.example.com\" is not from ACME"}
	default:
		return nil, &Error{Code: http.StatusNotFound, Msg: "no certificate is configured for domain \"" + domain + "\""}
	}
}

// renewals returns the domains renewed so far.
func (f *fakeRenewer) renewals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.renewed...)
}

// withCerts serves e's store through a new API whose Certificates is c.
func withCerts(t *testing.T, e *env, c Certificates) *env {
	t.Helper()
	srv := httptest.NewServer(New(Options{Store: e.store, Certs: c}))
	t.Cleanup(srv.Close)
	e.srv = srv
	return e
}

func TestRenewCertificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		path     string
		noRenew  bool // the Certificates cannot renew
		wantCode int
		wantBody map[string]any
		wantErr  string
		wantAllw string
	}{
		{name: "acme domain", method: "POST", path: "/api/v1/certificates/ACME.example.com/renew", wantCode: 202,
			wantBody: map[string]any{"domain": "acme.example.com", "source": "lets_encrypt", "status": "renewing"}},
		{name: "file certificate", method: "POST", path: "/api/v1/certificates/file.example.com/renew", wantCode: 409,
			wantErr: `the certificate of "file.example.com" is not from ACME`},
		{name: "unknown domain", method: "POST", path: "/api/v1/certificates/nope.example.com/renew", wantCode: 404,
			wantErr: `no certificate is configured for domain "nope.example.com"`},
		{name: "GET", method: "GET", path: "/api/v1/certificates/acme.example.com/renew", wantCode: 405, wantAllw: "POST",
			wantErr: "method GET not allowed; use POST"},
		{name: "renewal not available", method: "POST", path: "/api/v1/certificates/acme.example.com/renew", noRenew: true,
			wantCode: 501, wantErr: "certificate renewal is not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := &fakeRenewer{}
			if !tt.noRenew {
				withCerts(t, e, r)
			}
			resp := e.do(t, request{method: tt.method, path: tt.path})
			if resp.code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.code, tt.wantCode, resp.body)
			}
			if got := resp.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if got := resp.header.Get("Allow"); got != tt.wantAllw {
				t.Errorf("Allow %q, want %q", got, tt.wantAllw)
			}
			var body map[string]any
			if err := json.Unmarshal(resp.body, &body); err != nil {
				t.Fatalf("%v in %s", err, resp.body)
			}
			if tt.wantErr != "" {
				if !reflect.DeepEqual(body, map[string]any{"error": tt.wantErr}) {
					t.Errorf("body %s, want {\"error\": %q}", resp.body, tt.wantErr)
				}
				if got := r.renewals(); len(got) != 0 {
					t.Errorf("renewed %v", got)
				}
				return
			}
			if !reflect.DeepEqual(body, tt.wantBody) {
				t.Errorf("body %s, want %v", resp.body, tt.wantBody)
			}
			if got := r.renewals(); !reflect.DeepEqual(got, []string{"acme.example.com"}) {
				t.Errorf("renewed %v, want [acme.example.com]", got)
			}
		})
	}
}
