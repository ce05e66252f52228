package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/state"

	"fronttier/internal/testutil"
)

// fuzzAPI sends one request built from fuzzed parts through the real
// handler, on a fresh store, and checks what must hold for any input: no
// panic, no 5xx, a JSON error body on 4xx with the configuration in force
// and the persisted one unchanged, and on success a valid configuration
// that is exactly the one persisted.
func fuzzAPI(t *testing.T, method, path string, body []byte, contentType string) {
	p := &testutil.Persister{}
	store, err := state.New(testConfig(), backend.NewRegistry(nil, nil), p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Store: store})
	before := store.Config()

	req := httptest.NewRequest(method, "http://127.0.0.1"+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	code := rec.Code
	if code >= 500 {
		t.Fatalf("%s %s %q = %d %s", method, path, body, code, rec.Body)
	}
	if code >= 400 {
		var e map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || len(e) != 1 || e["error"] == "" {
			t.Fatalf("%s %s %q = %d with body %q, want {\"error\": ...}", method, path, body, code, rec.Body)
		}
		// Compared by pointer (nothing was published) and by value with a
		// fresh copy (nothing was modified in place).
		pristine := testConfig()
		pristine.Sort()
		if store.Config() != before || p.Count() != 0 || !reflect.DeepEqual(store.Config(), pristine) {
			t.Fatalf("%s %s %q = %d but the configuration changed", method, path, body, code)
		}
		return
	}
	if code != http.StatusOK && code != http.StatusCreated && code != http.StatusNoContent {
		t.Fatalf("%s %s %q = %d, an unexpected success", method, path, body, code)
	}
	now := store.Config()
	if err := now.Validate(); err != nil {
		t.Fatalf("%s %s %q = %d but the configuration is invalid: %v", method, path, body, code, err)
	}
	if p.Count() != 1 || !reflect.DeepEqual(p.Last(), now) {
		t.Fatalf("%s %s %q = %d: persisted %d times, in force differs from persisted", method, path, body, code, p.Count())
	}
}

// FuzzDecodeDomain fuzzes the domain bodies: POST /domains, PUT
// /domains/{name} and POST /domains/{name}/switch, with any name and body.
// Seeds: testdata/fuzz/FuzzDecodeDomain.
func FuzzDecodeDomain(f *testing.F) {
	f.Add(uint8(0), "", []byte(`{"domain": "new.example.com", "enabled_backends_tag": "a", "http_to_https": true}`))
	f.Add(uint8(1), "example.com", []byte(`{"certificate_source": {"type": "lets_encrypt"}, "force": true}`))
	f.Add(uint8(2), "EXAMPLE.com.", []byte(`{"new_tag": "green"}`))
	f.Fuzz(func(t *testing.T, op uint8, name string, body []byte) {
		method, path := "POST", "/api/v1/domains"
		switch op % 3 {
		case 1:
			method, path = "PUT", "/api/v1/domains/"+url.PathEscape(name)
		case 2:
			path = "/api/v1/domains/" + url.PathEscape(name) + "/switch"
		}
		ct := "application/json"
		if op >= 128 {
			ct = "" // no Content-Type is accepted too
		}
		fuzzAPI(t, method, path, body, ct)
	})
}

// FuzzDecodeBackend fuzzes the backend bodies: POST /backends and PUT
// /backends/{name}. Seeds: testdata/fuzz/FuzzDecodeBackend.
func FuzzDecodeBackend(f *testing.F) {
	f.Add(uint8(0), "", []byte(`{"id": "web-v4", "address": "192.168.1.13:3000", "tags": ["a"], "weight": 5}`))
	f.Add(uint8(1), "web-v1", []byte(`{"tags": ["b", "canary"], "force": true}`))
	f.Fuzz(func(t *testing.T, op uint8, name string, body []byte) {
		method, path := "POST", "/api/v1/backends"
		if op%2 == 1 {
			method, path = "PUT", "/api/v1/backends/"+url.PathEscape(name)
		}
		ct := "application/json"
		if op >= 128 {
			ct = ""
		}
		fuzzAPI(t, method, path, body, ct)
	})
}
