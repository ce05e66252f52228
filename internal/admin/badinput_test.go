package admin

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestBadInput sends malformed and hostile requests. Each must get the
// right 4xx with a JSON {"error"} body and change nothing: neither the
// configuration in force nor what was last persisted.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	okDomain := `"domain": "x.example.com", "enabled_backends_tag": "a"`
	okBackend := `"id": "x", "address": "10.0.0.1:80"`
	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	post := func(path, body string) request { return request{method: "POST", path: path, body: body} }
	put := func(path, body string) request { return request{method: "PUT", path: path, body: body} }
	del := func(path string) request { return request{method: "DELETE", path: path} }
	get := func(path string) request { return request{method: "GET", path: path} }
	const (
		domains  = "/api/v1/domains"
		domain   = "/api/v1/domains/example.com"
		sw       = "/api/v1/domains/example.com/switch"
		backends = "/api/v1/backends"
		backend  = "/api/v1/backends/web-v1"
	)
	tests := []struct {
		name     string
		req      request
		wantCode int
	}{
		// Wrong types.
		{name: "domain is a number", req: post(domains, `{"domain": 5, "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "tag is an array", req: post(domains, `{"domain": "x.example.com", "enabled_backends_tag": ["a"]}`), wantCode: 400},
		{name: "bool as string", req: put(domain, `{"http_to_https": "true"}`), wantCode: 400},
		{name: "bool as number", req: put(domain, `{"tls_enabled": 1}`), wantCode: 400},
		{name: "certificate_source is a string", req: put(domain, `{"certificate_source": "file"}`), wantCode: 400},
		{name: "certificate_source is an array", req: put(domain, `{"certificate_source": [{"type": "lets_encrypt"}]}`), wantCode: 400},
		{name: "certificate_source type is a number", req: put(domain, `{"certificate_source": {"type": 1}}`), wantCode: 400},
		{name: "force is a string", req: put(domain, `{"enabled_backends_tag": "nobody", "force": "yes"}`), wantCode: 400},
		{name: "address is a number", req: post(backends, `{"id": "x", "address": 80}`), wantCode: 400},
		{name: "tags hold numbers", req: put(backend, `{"tags": [1, 2]}`), wantCode: 400},
		{name: "tags is an object", req: put(backend, `{"tags": {"a": true}}`), wantCode: 400},
		{name: "tags hold null", req: put(backend, `{"tags": [null]}`), wantCode: 400},
		{name: "weight is a string", req: put(backend, `{"weight": "5"}`), wantCode: 400},
		{name: "weight is a fraction", req: put(backend, `{"weight": 1.5}`), wantCode: 400},
		{name: "new_tag is a number", req: post(sw, `{"new_tag": 5}`), wantCode: 400},
		{name: "new_tag is an object", req: post(sw, `{"new_tag": {"tag": "green"}}`), wantCode: 400},

		// Huge bodies.
		{name: "domain body over 1 MiB", req: post(domains, `{`+okDomain+`, "lb_policy": "`+strings.Repeat("x", mib)+`"}`), wantCode: 413},
		{name: "white space over 1 MiB", req: put(domain, `{"http_to_https": false`+strings.Repeat(" ", mib)+`}`), wantCode: 413},
		{name: "backend tags over 1 MiB", req: put(backend, `{"tags": [`+strings.Repeat(`"a",`, mib/4)+`"a"]}`), wantCode: 413},
		{name: "switch over 1 MiB", req: post(sw, `{"new_tag": "`+strings.Repeat("g", mib)+`"}`), wantCode: 413},

		// Deep nesting.
		{name: "deeply nested value", req: post(domains, `{"domain": `+deep("[", "]", 10000)+`}`), wantCode: 400},
		{name: "deeply nested objects", req: put(domain, `{"certificate_source": `+deep(`{"type": `, "}", 5000)+`}`), wantCode: 400},
		{name: "nested arrays at the top", req: put(backend, deep("[", "]", 500000)), wantCode: 400},
		{name: "nested beyond the decoder's own limit", req: post(sw, `{"new_tag": `+deep("[", "]", 200000)+`}`), wantCode: 400},

		// Unknown fields, including the case-insensitive matches encoding/json would take.
		{name: "unknown field", req: post(domains, `{`+okDomain+`, "bogus": true}`), wantCode: 400},
		{name: "unknown null field", req: put(domain, `{"bogus": null}`), wantCode: 400},
		{name: "read-only field", req: put(backend, `{"healthy": false}`), wantCode: 400},
		{name: "field in upper case", req: post(domains, `{"DOMAIN": "x.example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "field in other case shadowing", req: post(domains, `{`+okDomain+`, "Domain": "evil.example.com"}`), wantCode: 400},
		{name: "field matched by Unicode folding", req: put(domain, `{"enabled_bac\u212Aends_tag": "green"}`), wantCode: 400},
		{name: "nested field in other case", req: put(domain, `{"certificate_source": {"Type": "lets_encrypt"}}`), wantCode: 400},
		{name: "nested unknown field", req: put(domain, `{"certificate_source": {"type": "lets_encrypt", "email": "x@example.com"}}`), wantCode: 400},
		{name: "NUL in a key", req: put(domain, `{"http_to_https\u0000": false}`), wantCode: 400},

		// Invalid names.
		{name: "unicode domain", req: post(domains, `{"domain": "exämple.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "Kelvin sign folds to k", req: post(domains, `{"domain": "\u212Ax.example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "dotted capital I", req: post(domains, `{"domain": "\u0130x.example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "300-character domain", req: post(domains, `{"domain": "`+strings.Repeat("abcdefghi.", 30)+`com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "64-character label", req: post(domains, `{"domain": "`+strings.Repeat("a", 64)+`.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "dot-dot slash domain", req: post(domains, `{"domain": "../", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "path as domain", req: post(domains, `{"domain": "../../etc/passwd", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "percent-encoded dots", req: post(domains, `{"domain": "%2e%2e", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "NUL in domain", req: post(domains, `{"domain": "x\u0000.example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "space in domain", req: post(domains, `{"domain": "x example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "surrounding spaces in domain", req: post(domains, `{"domain": " x.example.com ", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "newline in domain", req: post(domains, `{"domain": "x.example.com\n", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "empty domain", req: post(domains, `{"domain": "", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "dot as domain", req: post(domains, `{"domain": ".", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "two trailing dots", req: post(domains, `{"domain": "x.example.com..", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "bare wildcard", req: post(domains, `{"domain": "*", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "wildcard on a TLD", req: post(domains, `{"domain": "*.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "inner wildcard", req: post(domains, `{"domain": "a.*.example.com", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "URL as domain", req: post(domains, `{"domain": "http://x.example.com/", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "domain with port", req: post(domains, `{"domain": "x.example.com:443", "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "rename by PUT", req: put(domain, `{"domain": "../example.com"}`), wantCode: 400},
		{name: "tag with slash", req: post(domains, `{"domain": "x.example.com", "enabled_backends_tag": "a/b"}`), wantCode: 400},
		{name: "tag with NUL", req: put(domain, `{"enabled_backends_tag": "a\u0000"}`), wantCode: 400},
		{name: "empty tag", req: post(sw, `{"new_tag": ""}`), wantCode: 400},
		{name: "dot-dot tag", req: post(sw, `{"new_tag": "../green"}`), wantCode: 400},
		{name: "unicode tag", req: post(sw, `{"new_tag": "grün"}`), wantCode: 400},
		{name: "65-character tag", req: post(sw, `{"new_tag": "`+strings.Repeat("g", 65)+`"}`), wantCode: 400},
		{name: "id with slash", req: post(backends, `{"id": "a/b", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "dot-dot id", req: post(backends, `{"id": "../x", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "id with space", req: post(backends, `{"id": "web v1", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "id with NUL", req: post(backends, `{"id": "x\u0000", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "unicode id", req: post(backends, `{"id": "wéb", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "65-character id", req: post(backends, `{"id": "`+strings.Repeat("x", 65)+`", "address": "10.0.0.1:80"}`), wantCode: 400},
		{name: "duplicate tags", req: put(backend, `{"tags": ["a", "a"]}`), wantCode: 400},
		{name: "too many tags", req: put(backend, `{"tags": [`+strings.Repeat(`"a",`, 200000)+`"a"]}`), wantCode: 400},
		{name: "many bad tags", req: put(backend, `{"tags": [`+strings.Repeat(`"a b",`, 99)+`"a"]}`), wantCode: 400},
		{name: "address without port", req: put(backend, `{"address": "10.0.0.1"}`), wantCode: 400},
		{name: "address port 0", req: put(backend, `{"address": "10.0.0.1:0"}`), wantCode: 400},
		{name: "address port out of range", req: put(backend, `{"address": "10.0.0.1:65536"}`), wantCode: 400},
		{name: "address as URL", req: put(backend, `{"address": "http://10.0.0.1:80"}`), wantCode: 400},
		{name: "address with path", req: put(backend, `{"address": "10.0.0.1:80/admin"}`), wantCode: 400},
		{name: "address with space", req: put(backend, `{"address": "evil host:80"}`), wantCode: 400},
		{name: "address with NUL", req: put(backend, `{"address": "host\u0000:80"}`), wantCode: 400},
		{name: "certificate path with NUL", req: put(domain, `{"certificate_source": {"type": "file", "cert_path": "/c.pem\u0000", "key_path": "/k.pem"}}`), wantCode: 400},
		{name: "certificate path with newline", req: put(domain, `{"certificate_source": {"type": "file", "cert_path": "/c.pem", "key_path": "/k.pem\n"}}`), wantCode: 400},

		// Path tricks.
		{name: "encoded traversal GET", req: get("/api/v1/domains/..%2f..%2fetc"), wantCode: 404},
		{name: "encoded traversal PUT", req: put("/api/v1/domains/..%2f..%2fetc", `{"http_to_https": false}`), wantCode: 404},
		{name: "encoded traversal DELETE", req: del("/api/v1/domains/..%2f..%2fetc"), wantCode: 404},
		{name: "encoded traversal backend DELETE", req: del("/api/v1/backends/..%2F..%2Fetc"), wantCode: 404},
		{name: "encoded dots", req: del("/api/v1/domains/%2e%2e"), wantCode: 404},
		{name: "encoded dot", req: del("/api/v1/domains/%2e"), wantCode: 404},
		{name: "literal traversal", req: get("/api/v1/domains/../../etc"), wantCode: 404},
		{name: "literal traversal to a real endpoint", req: del("/api/v1/backends/../domains/example.com"), wantCode: 404},
		{name: "dot segment", req: del("/api/v1/domains/./example.com"), wantCode: 404},
		{name: "double slash", req: get("/api/v1//domains"), wantCode: 404},
		{name: "double slash POST", req: post("/api/v1//domains", `{`+okDomain+`}`), wantCode: 404},
		{name: "leading double slash", req: del("//api/v1/domains/example.com"), wantCode: 404},
		{name: "trailing slash on list", req: get("/api/v1/domains/"), wantCode: 404},
		{name: "trailing slash DELETE", req: del("/api/v1/domains/example.com/"), wantCode: 404},
		{name: "trailing slash PUT", req: put("/api/v1/backends/web-v1/", `{"weight": 2}`), wantCode: 404},
		{name: "encoded slash in domain", req: del("/api/v1/domains/example.com%2F"), wantCode: 404},
		{name: "encoded slash in id", req: del("/api/v1/backends/web%2Fv1"), wantCode: 404},
		{name: "encoded slash before switch", req: post("/api/v1/domains/example.com%2Fswitch", `{"new_tag": "green"}`), wantCode: 405},
		{name: "encoded NUL in domain", req: del("/api/v1/domains/example.com%00"), wantCode: 404},
		{name: "encoded space before domain", req: del("/api/v1/domains/%20example.com"), wantCode: 404},
		{name: "encoded newline after id", req: del("/api/v1/backends/web-v1%0A"), wantCode: 404},
		{name: "unicode in path", req: del("/api/v1/domains/ex%C3%A4mple.com"), wantCode: 404},
		{name: "very long id", req: del("/api/v1/backends/" + strings.Repeat("x", 8000)), wantCode: 404},
		{name: "upper-case API path", req: get("/API/V1/DOMAINS"), wantCode: 404},
		{name: "force not a bool", req: del("/api/v1/backends/web-v1?force=maybe"), wantCode: 400},

		// Duplicate keys: encoding/json would keep the last silently.
		{name: "duplicate domain key", req: post(domains, `{`+okDomain+`, "domain": "y.example.com"}`), wantCode: 400},
		{name: "duplicate tag key", req: put(domain, `{"enabled_backends_tag": "green", "enabled_backends_tag": "nobody"}`), wantCode: 400},
		{name: "duplicate force", req: put(domain, `{"enabled_backends_tag": "nobody", "force": false, "force": true}`), wantCode: 400},
		{name: "duplicate nested key", req: put(domain, `{"certificate_source": {"type": "file", "type": "lets_encrypt"}}`), wantCode: 400},
		{name: "duplicate tags key", req: put(backend, `{"tags": ["a"], "tags": []}`), wantCode: 400},
		{name: "duplicate new_tag", req: post(sw, `{"new_tag": "green", "new_tag": "b"}`), wantCode: 400},
		{name: "duplicate written with an escape", req: post(sw, `{"new_tag": "green", "new_\u0074ag": "b"}`), wantCode: 400},

		// null where an object or a value is expected.
		{name: "null body POST", req: post(domains, `null`), wantCode: 400},
		{name: "null body PUT", req: put(domain, `null`), wantCode: 400},
		{name: "null body switch", req: post(sw, `null`), wantCode: 400},
		{name: "null body backend", req: put(backend, `null`), wantCode: 400},
		{name: "null domain", req: post(domains, `{"domain": null, "enabled_backends_tag": "a"}`), wantCode: 400},
		{name: "null tag", req: put(domain, `{"enabled_backends_tag": null}`), wantCode: 400},
		{name: "null bool", req: put(domain, `{"http_to_https": null}`), wantCode: 400},
		{name: "null policy", req: put(domain, `{"lb_policy": null}`), wantCode: 400},
		{name: "null new_tag", req: post(sw, `{"new_tag": null}`), wantCode: 400},
		{name: "null tags", req: put(backend, `{"tags": null}`), wantCode: 400},
		{name: "null weight", req: put(backend, `{"weight": null}`), wantCode: 400},
		{name: "null force", req: put(backend, `{"weight": 2, "force": null}`), wantCode: 400},
		{name: "null certificate type", req: put(domain, `{"certificate_source": {"type": null}}`), wantCode: 400},

		// Arrays and scalars instead of objects.
		{name: "array of domains", req: post(domains, `[{`+okDomain+`}]`), wantCode: 400},
		{name: "empty array PUT", req: put(backend, `[]`), wantCode: 400},
		{name: "array switch", req: post(sw, `["green"]`), wantCode: 400},
		{name: "string body", req: post(sw, `"green"`), wantCode: 400},
		{name: "number body", req: post(backends, `42`), wantCode: 400},
		{name: "bool body", req: put(domain, `true`), wantCode: 400},

		// Numbers out of range.
		{name: "weight 1e9", req: put(backend, `{"weight": 1e9}`), wantCode: 400},
		{name: "weight 1000000000", req: put(backend, `{"weight": 1000000000}`), wantCode: 400},
		{name: "weight -1", req: put(backend, `{"weight": -1}`), wantCode: 400},
		{name: "weight 1001", req: put(backend, `{"weight": 1001}`), wantCode: 400},
		{name: "weight 1e400", req: put(backend, `{"weight": 1e400}`), wantCode: 400},
		{name: "weight beyond int64", req: put(backend, `{"weight": 99999999999999999999999}`), wantCode: 400},
		{name: "weight NaN", req: put(backend, `{"weight": NaN}`), wantCode: 400},
		{name: "weight hex", req: put(backend, `{"weight": 0x10}`), wantCode: 400},
		{name: "weight on POST", req: post(backends, `{`+okBackend+`, "weight": -5}`), wantCode: 400},

		// Content types.
		{name: "text/plain", req: request{method: "POST", path: domains, body: `{` + okDomain + `}`, contentType: "text/plain"}, wantCode: 415},
		{name: "text/plain on PUT", req: request{method: "PUT", path: backend, body: `{"weight": 2}`, contentType: "text/plain; charset=utf-8"}, wantCode: 415},
		{name: "XML", req: request{method: "POST", path: sw, body: `<new_tag>green</new_tag>`, contentType: "application/xml"}, wantCode: 415},
		{name: "JSON lookalike", req: request{method: "POST", path: sw, body: `{"new_tag": "green"}`, contentType: "application/jsonp"}, wantCode: 415},
		{name: "multipart", req: request{method: "POST", path: backends, body: `{` + okBackend + `}`, contentType: "multipart/form-data; boundary=x"}, wantCode: 415},
		{name: "JSON in Latin-1", req: request{method: "POST", path: domains, body: `{` + okDomain + `}`, contentType: "application/json; charset=iso-8859-1"}, wantCode: 415},
		{name: "malformed content type", req: request{method: "POST", path: domains, body: `{` + okDomain + `}`, contentType: "application/json; charset"}, wantCode: 415},

		// Malformed JSON.
		{name: "empty PUT", req: request{method: "PUT", path: domain, contentType: "application/json"}, wantCode: 400},
		{name: "white space only", req: put(domain, " \n\t "), wantCode: 400},
		{name: "truncated", req: put(domain, `{"http_to_https": fal`), wantCode: 400},
		{name: "unterminated string", req: post(sw, `{"new_tag": "green`), wantCode: 400},
		{name: "single quotes", req: post(sw, `{'new_tag': 'green'}`), wantCode: 400},
		{name: "trailing comma", req: post(sw, `{"new_tag": "green",}`), wantCode: 400},
		{name: "comment", req: post(sw, `{"new_tag": "green" /* x */}`), wantCode: 400},
		{name: "byte order mark", req: post(sw, "\ufeff{\"new_tag\": \"green\"}"), wantCode: 400},
		{name: "raw NUL", req: post(sw, "{\"new_tag\": \"green\"}\x00"), wantCode: 400},
		{name: "invalid UTF-8", req: post(domains, "{\"domain\": \"x\xff.example.com\", \"enabled_backends_tag\": \"a\"}"), wantCode: 400},
		{name: "invalid UTF-8 in a tag", req: post(sw, "{\"new_tag\": \"gr\xc3een\"}"), wantCode: 400},
		{name: "two objects", req: post(sw, `{"new_tag": "green"}{"new_tag": "b"}`), wantCode: 400},
		{name: "bad escape", req: post(sw, `{"new_tag": "gr\een"}`), wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			// A first change, so there is a persisted configuration to keep.
			if r := e.do(t, put("/api/v1/domains/api.example.com", `{"http_to_https": false}`)); r.code != 200 {
				t.Fatalf("setup PUT = %d %s", r.code, r.body)
			}
			before, savedBefore, calls := e.store.Config(), e.p.Last(), e.p.Count()

			r := e.do(t, tt.req)
			if r.code != tt.wantCode {
				body := r.body
				if len(body) > 300 {
					body = body[:300]
				}
				t.Fatalf("%s %.80s = %d %s, want %d", tt.req.method, tt.req.path, r.code, body, tt.wantCode)
			}
			checkJSONError(t, r)
			if len(r.body) > 4096+len(tt.req.path) { // a message may quote the path
				t.Errorf("error answer of %d bytes; it should stay short", len(r.body))
			}
			if got := e.store.Config(); got != before || !reflect.DeepEqual(got, before) {
				t.Error("the configuration in force changed")
			}
			if e.p.Count() != calls || !reflect.DeepEqual(e.p.Last(), savedBefore) {
				t.Error("the persisted configuration changed")
			}
			if r.code == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// TestTooLargeChunked checks the body limit when no Content-Length tells
// the size up front.
func TestTooLargeChunked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.store.Config()
	body := io.MultiReader(strings.NewReader(`{"lb_policy": "`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`))
	req, err := http.NewRequest("PUT", e.srv.URL+"/api/v1/domains/example.com", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if req.ContentLength > 0 {
		t.Fatal("request was sent with a length; the test proves nothing")
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked 2 MiB PUT = %d %s, want 413", resp.StatusCode, b)
	}
	checkJSONError(t, response{code: resp.StatusCode, header: resp.Header, body: b})
	if e.store.Config() != before || e.p.Count() != 0 {
		t.Error("configuration changed")
	}
}
