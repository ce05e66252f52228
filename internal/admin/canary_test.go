package admin

import (
	"encoding/json"
	"strings"
	"testing"

	"fronttier/internal/config"
)

// testConfig's tags: a (web-v1, healthy), b (web-v2, unhealthy), green
// (web-v3, not checked yet).

func TestCanaryEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    []request // sent first, each must answer 2xx
		req      request
		wantCode int
		wantErr  string // a part of the error message
		golden   string
		// wantCanary is the canary example.com must have afterwards.
		wantCanary *config.Canary
	}{
		{name: "set", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 10}`},
			wantCode: 200, golden: "canary_set.json", wantCanary: &config.Canary{Tag: "green", Percent: 10}},
		{name: "fine share", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 0.5}`},
			wantCode: 200, wantCanary: &config.Canary{Tag: "green", Percent: 0.5}},
		{name: "unhealthy tag", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "b", "percent": 10}`},
			wantCode: 409, wantErr: "canary: conflict: the only backend with tag \"b\" is unhealthy"},
		{name: "unhealthy tag, forced", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "b", "percent": 10, "force": true}`},
			wantCode: 200, wantCanary: &config.Canary{Tag: "b", Percent: 10}},
		{name: "tag without backend", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "nobody", "percent": 1}`},
			wantCode: 409, wantErr: `no backend carries tag "nobody"`},
		{name: "enabled tag", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "a", "percent": 10}`},
			wantCode: 400, wantErr: `canary.tag: "a" is enabled_backends_tag already`},
		{name: "percent over 100", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 150}`},
			wantCode: 400, wantErr: "canary.percent: 150 is not between 0 and 100"},
		{name: "too fine", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 0.001}`},
			wantCode: 400, wantErr: "canary.percent: 0.001 is finer than 0.01"},
		{name: "missing fields", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{}`},
			wantCode: 400, wantErr: "missing required field(s): tag, percent"},
		{name: "unknown field", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 1, "share": 2}`},
			wantCode: 400, wantErr: `unknown field "share"`},
		{name: "percent as a string", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": "10"}`},
			wantCode: 400},
		{name: "unknown domain", req: request{method: "PUT", path: "/api/v1/domains/nope.example.com/canary", body: `{"tag": "green", "percent": 10}`},
			wantCode: 404},
		{name: "If-Match does not hold", req: request{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 10}`,
			header: map[string]string{"If-Match": `"0000000000000000"`}}, wantCode: 412},
		{name: "GET", req: request{method: "GET", path: "/api/v1/domains/example.com/canary"}, wantCode: 405},
		{name: "delete",
			setup:    []request{{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 10}`}},
			req:      request{method: "DELETE", path: "/api/v1/domains/example.com/canary"},
			wantCode: 200, golden: "canary_deleted.json"},
		{name: "delete none", req: request{method: "DELETE", path: "/api/v1/domains/example.com/canary"}, wantCode: 200},
		{name: "delete unknown domain", req: request{method: "DELETE", path: "/api/v1/domains/nope.example.com/canary"}, wantCode: 404},
		{name: "switch clears it",
			setup:    []request{{method: "PUT", path: "/api/v1/domains/example.com/canary", body: `{"tag": "green", "percent": 10}`}},
			req:      request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`},
			wantCode: 200},
		{name: "PUT domain with every section",
			req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": {"tag": "green", "percent": 25},
				"sticky": {"by": "header:X-User-Id", "backend": true},
				"overrides": [{"header": "X-Canary", "value": "1", "tag": "green"}, {"query": "v", "value": "old", "tag": "a"}]}`},
			wantCode: 200, golden: "domain_canary_sections.json", wantCanary: &config.Canary{Tag: "green", Percent: 25}},
		{name: "PUT domain removes sections",
			setup: []request{{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": {"tag": "green", "percent": 25},
				"sticky": {"by": "ip"}, "overrides": [{"cookie": "beta", "value": "1", "tag": "green"}]}`}},
			req:      request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": null, "sticky": null, "overrides": []}`},
			wantCode: 200, golden: "domain_get.json"},
		{name: "PUT domain override with two matchers",
			req:      request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"overrides": [{"header": "X-Canary", "cookie": "c", "value": "1", "tag": "green"}]}`},
			wantCode: 400, wantErr: "overrides[0]: set exactly one of header, cookie and query (2 are set)"},
		{name: "PUT domain override to a tag without backend",
			req:      request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"overrides": [{"header": "X-Canary", "value": "1", "tag": "nobody"}]}`},
			wantCode: 409, wantErr: `overrides[0]: conflict: no backend carries tag "nobody"`},
		{name: "PUT domain override unknown field",
			req:      request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"overrides": [{"header": "X-Canary", "value": "1", "tag": "a", "weight": 1}]}`},
			wantCode: 400, wantErr: `unknown field "weight"`},
		{name: "PUT domain overrides null",
			req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"overrides": null}`}, wantCode: 400},
		{name: "PUT domain canary unknown field",
			req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": {"tag": "green", "share": 1}}`}, wantCode: 400, wantErr: "canary: unknown field"},
		{name: "PUT domain bad sticky",
			req: request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"sticky": {"by": "session"}}`}, wantCode: 400, wantErr: "sticky.by"},
		{name: "POST domain with a canary",
			req:      request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.example.com", "enabled_backends_tag": "a", "canary": {"tag": "green", "percent": 5}}`},
			wantCode: 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for _, s := range tt.setup {
				if r := e.do(t, s); r.code/100 != 2 {
					t.Fatalf("setup %s %s: %d %s", s.method, s.path, r.code, r.body)
				}
			}
			r := e.do(t, tt.req)
			if r.code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", r.code, tt.wantCode, r.body)
			}
			if r.code >= 400 {
				checkJSONError(t, r)
				if msg := errorMessage(t, r); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", msg, tt.wantErr)
				}
				return
			}
			if tt.golden != "" {
				checkGolden(t, tt.golden, r.body)
			}
			if r.header.Get("ETag") == "" && r.code == 200 {
				t.Error("no ETag")
			}
			got := e.store.Config().Host("example.com").Canary
			if !sameCanaryTest(got, tt.wantCanary) {
				t.Errorf("canary %+v, want %+v", got, tt.wantCanary)
			}
			var d domainJSON
			if err := json.Unmarshal(r.body, &d); err == nil && d.Domain == "example.com" && !sameCanaryTest(d.Canary, tt.wantCanary) {
				t.Errorf("answer shows canary %+v, want %+v", d.Canary, tt.wantCanary)
			}
		})
	}
}

func sameCanaryTest(a, b *config.Canary) bool { return a == b || (a != nil && b != nil && *a == *b) }

// errorMessage returns the message of an error answer.
func errorMessage(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return body.Error
}

func TestExplain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.do(t, request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": {"tag": "green", "percent": 10},
		"overrides": [{"header": "X-Canary", "value": "1", "tag": "green"}, {"cookie": "beta", "value": "yes", "tag": "green"}, {"query": "canary", "value": "0", "tag": "a"}]}`}); r.code != 200 {
		t.Fatalf("setup: %d %s", r.code, r.body)
	}
	if r := e.do(t, request{method: "PUT", path: "/api/v1/domains/api.example.com", body: `{"canary": {"tag": "green", "percent": 50}, "sticky": {"by": "ip"}}`}); r.code != 200 {
		t.Fatalf("setup: %d %s", r.code, r.body)
	}
	tests := []struct {
		name       string
		domain     string
		body       string
		wantCode   int
		wantTag    string
		wantReason string // a prefix of the reason (or of the error)
		wantBucket int    // -1: none
	}{
		{name: "override header", body: `{"headers": {"X-Canary": "1"}}`, wantTag: "green", wantReason: "override header X-Canary=1", wantBucket: -1},
		{name: "header names any case", body: `{"headers": {"x-canary": "1"}}`, wantTag: "green", wantReason: "override header X-Canary=1", wantBucket: -1},
		{name: "override cookie", body: `{"cookies": {"beta": "yes", "fronttier_bucket": "5000"}}`, wantTag: "green", wantReason: "override cookie beta=yes", wantBucket: -1},
		{name: "override query", body: `{"query": "x=1&canary=0", "cookies": {"fronttier_bucket": "1"}}`, wantTag: "a", wantReason: "override query canary=0", wantBucket: -1},
		{name: "canary bucket", body: `{"cookies": {"fronttier_bucket": "412"}}`, wantTag: "green",
			wantReason: "canary bucket 412 < threshold 1000 (10%); bucket from cookie fronttier_bucket", wantBucket: 412},
		{name: "stable bucket", body: `{"cookies": {"fronttier_bucket": "5120"}}`, wantTag: "a",
			wantReason: "stable: bucket 5120 >= threshold 1000 (10%)", wantBucket: 5120},
		{name: "cookie header", body: `{"headers": {"Cookie": "fronttier_bucket=5120"}}`, wantTag: "a", wantReason: "stable: bucket 5120", wantBucket: 5120},
		{name: "new client", body: `{}`, wantReason: "", wantBucket: 0},
		{name: "by IP", domain: "api.example.com", body: `{"client_ip": "203.0.113.7"}`, wantReason: "", wantBucket: 0},
		{name: "no canary", domain: "api.example.com", body: `{"client_ip": "::1"}`, wantReason: "", wantBucket: 0},
		{name: "empty body", body: ``, wantCode: 400},
		{name: "bad client_ip", body: `{"client_ip": "203.0.113"}`, wantCode: 400, wantReason: `client_ip: "203.0.113" is not an IP address`},
		{name: "bad header name", body: `{"headers": {"X Canary": "1"}}`, wantCode: 400, wantReason: `headers: "X Canary" is not a header name`},
		{name: "bad cookie name", body: `{"cookies": {"a;b": "1"}}`, wantCode: 400, wantReason: `cookies: "a;b" is not a cookie name`},
		{name: "cookies twice", body: `{"cookies": {"a": "1"}, "headers": {"Cookie": "b=2"}}`, wantCode: 400, wantReason: "give cookies either"},
		{name: "unknown field", body: `{"header": {"x_canary": "1"}}`, wantCode: 400, wantReason: `unknown field "header"`},
		{name: "key twice", body: `{"headers": {"X-Canary": "1", "X-Canary": "2"}}`, wantCode: 400, wantReason: `field "X-Canary" appears twice`},
		{name: "header value not a string", body: `{"headers": {"X-Canary": 1}}`, wantCode: 400},
		{name: "unknown domain", domain: "nope.example.com", body: `{}`, wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domain := tt.domain
			if domain == "" {
				domain = "example.com"
			}
			r := e.do(t, request{method: "POST", path: "/api/v1/domains/" + domain + "/explain", body: tt.body, contentType: "application/json"})
			want := tt.wantCode
			if want == 0 {
				want = 200
			}
			if r.code != want {
				t.Fatalf("status %d, want %d; body %s", r.code, want, r.body)
			}
			if r.code != 200 {
				checkJSONError(t, r)
				if msg := errorMessage(t, r); !strings.Contains(msg, tt.wantReason) {
					t.Errorf("error %q, want it to contain %q", msg, tt.wantReason)
				}
				return
			}
			var got explainJSON
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if tt.wantTag != "" && got.Tag != tt.wantTag {
				t.Errorf("tag %q, want %q (%s)", got.Tag, tt.wantTag, r.body)
			}
			if !strings.HasPrefix(got.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to start with %q", got.Reason, tt.wantReason)
			}
			if tt.wantBucket >= 0 && tt.wantBucket != 0 && (got.Bucket == nil || *got.Bucket != tt.wantBucket) {
				t.Errorf("bucket %v, want %d", got.Bucket, tt.wantBucket)
			}
			if tt.wantBucket < 0 && got.Bucket != nil {
				t.Errorf("bucket %d, want none", *got.Bucket)
			}
		})
	}
}

// TestExplainByIP: the same client address always gets the same answer,
// which names it.
func TestExplainByIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.do(t, request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"canary": {"tag": "green", "percent": 50}, "sticky": {"by": "ip"}}`}); r.code != 200 {
		t.Fatalf("setup: %d %s", r.code, r.body)
	}
	var first explainJSON
	for i := range 3 {
		r := e.do(t, request{method: "POST", path: "/api/v1/domains/example.com/explain", body: `{"client_ip": "::ffff:203.0.113.7"}`})
		var got explainJSON
		if err := json.Unmarshal(r.body, &got); err != nil || r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if !strings.HasSuffix(got.Reason, "bucket from client IP 203.0.113.7") || got.Bucket == nil {
			t.Errorf("reason %q, bucket %v", got.Reason, got.Bucket)
		}
		if i == 0 {
			first = got
		} else if *got.Bucket != *first.Bucket || got.Tag != first.Tag {
			t.Errorf("answer %+v differs from the first %+v", got, first)
		}
	}
}
