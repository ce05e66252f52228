package admin

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/state"
	"fronttier/internal/store"
)

var etagRE = regexp.MustCompile(`^"[0-9a-f]{16}"$`)

func TestETagOnReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{
		"/api/v1/domains", "/api/v1/domains/example.com", "/api/v1/backends", "/api/v1/backends/web-v2",
	} {
		get := e.get(t, path)
		tag := get.header.Get("ETag")
		if !etagRE.MatchString(tag) {
			t.Errorf("GET %s: ETag = %q, want a quoted 16-digit hex tag", path, tag)
		}
		if again := e.get(t, path).header.Get("ETag"); again != tag {
			t.Errorf("GET %s twice: ETag %s then %s", path, tag, again)
		}
		if head := e.do(t, request{method: "HEAD", path: path}).header.Get("ETag"); head != tag {
			t.Errorf("HEAD %s: ETag %s, GET has %s", path, head, tag)
		}
	}
	if a, b := e.get(t, "/api/v1/domains/example.com").header.Get("ETag"), e.get(t, "/api/v1/domains/api.example.com").header.Get("ETag"); a == b {
		t.Errorf("two domains share ETag %s", a)
	}
	if got := e.get(t, "/api/v1/domains/EXAMPLE.com.").header.Get("ETag"); got != e.get(t, "/api/v1/domains/example.com").header.Get("ETag") {
		t.Errorf("ETag depends on how the domain is spelled in the URL")
	}
	if got := e.get(t, "/api/v1/domains/nope.example.com").header.Get("ETag"); got != "" {
		t.Errorf("404 carries ETag %s", got)
	}
}

// TestETagIgnoresHealth checks that a backend's tag covers its
// configuration, not its live health, which changes by itself.
func TestETagIgnoresHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	one, list := e.get(t, "/api/v1/backends/web-v1"), e.get(t, "/api/v1/backends")
	live := e.store.Backend("web-v1")
	live.SetHealth(backend.Unhealthy)
	live.SetStatus(backend.Status{LastError: "connection refused", ConsecutiveFailures: 7})
	live.Acquire()
	one2, list2 := e.get(t, "/api/v1/backends/web-v1"), e.get(t, "/api/v1/backends")
	if bytes.Equal(one.body, one2.body) {
		t.Fatal("health change not visible in the body; the test proves nothing")
	}
	if one.header.Get("ETag") != one2.header.Get("ETag") || list.header.Get("ETag") != list2.header.Get("ETag") {
		t.Error("a health change changed the ETag")
	}
	r := e.do(t, request{method: "PUT", path: "/api/v1/backends/web-v1", body: `{"weight": 2}`})
	if r.code != 200 {
		t.Fatalf("PUT = %d %s", r.code, r.body)
	}
	one3, list3 := e.get(t, "/api/v1/backends/web-v1"), e.get(t, "/api/v1/backends")
	if one3.header.Get("ETag") == one.header.Get("ETag") || list3.header.Get("ETag") == list.header.Get("ETag") {
		t.Error("a weight change kept the ETag")
	}
	if r.header.Get("ETag") != one3.header.Get("ETag") {
		t.Errorf("PUT answered ETag %s, GET now has %s", r.header.Get("ETag"), one3.header.Get("ETag"))
	}
}

// TestETagOnWrites checks that each successful write answers with the
// item's new ETag, the one a GET then shows.
func TestETagOnWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	writes := []struct {
		req  request
		item string
	}{
		{req: request{method: "POST", path: "/api/v1/domains", body: `{"domain": "new.example.com", "enabled_backends_tag": "a"}`}, item: "/api/v1/domains/new.example.com"},
		{req: request{method: "PUT", path: "/api/v1/domains/new.example.com", body: `{"http_to_https": false}`}, item: "/api/v1/domains/new.example.com"},
		{req: request{method: "POST", path: "/api/v1/domains/new.example.com/switch", body: `{"new_tag": "green"}`}, item: "/api/v1/domains/new.example.com"},
		{req: request{method: "POST", path: "/api/v1/backends", body: `{"id": "web-v9", "address": "10.0.0.9:80"}`}, item: "/api/v1/backends/web-v9"},
		{req: request{method: "PUT", path: "/api/v1/backends/web-v9", body: `{"tags": ["x"]}`}, item: "/api/v1/backends/web-v9"},
	}
	seen := map[string]bool{}
	for _, w := range writes {
		r := e.do(t, w.req)
		if r.code != 200 && r.code != 201 {
			t.Fatalf("%s %s = %d %s", w.req.method, w.req.path, r.code, r.body)
		}
		tag := r.header.Get("ETag")
		if !etagRE.MatchString(tag) {
			t.Errorf("%s %s: ETag = %q", w.req.method, w.req.path, tag)
		}
		if got := e.get(t, w.item).header.Get("ETag"); got != tag {
			t.Errorf("%s %s answered ETag %s, GET %s has %s", w.req.method, w.req.path, tag, w.item, got)
		}
		if seen[tag] {
			t.Errorf("%s %s: ETag %s seen before a change", w.req.method, w.req.path, tag)
		}
		seen[tag] = true
	}
}

// TestTwoOperators is the lost update If-Match prevents: both read, A
// writes, B's write based on the old read is refused and the file keeps A's
// change.
func TestTwoOperators(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := config.Save(path, testConfig()); err != nil {
		t.Fatal(err)
	}
	store, err := state.New(testConfig(), backend.NewRegistry(nil, nil), store.NewFile(path), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Store: store}))
	defer srv.Close()
	e := &env{srv: srv, store: store}

	tests := []struct {
		name      string
		item      string
		a, b      request // B's is sent with the tag both read
		wantField string  // appears in the file after A's change and after B's refusal
	}{
		{
			name:      "domain",
			item:      "/api/v1/domains/example.com",
			a:         request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"lb_policy": "least_conn"}`},
			b:         request{method: "PUT", path: "/api/v1/domains/example.com", body: `{"lb_policy": "weighted"}`},
			wantField: `lb_policy = 'least_conn'`,
		},
		{
			name:      "switch after an edit",
			item:      "/api/v1/domains/api.example.com",
			a:         request{method: "PUT", path: "/api/v1/domains/api.example.com", body: `{"http_to_https": false}`},
			b:         request{method: "POST", path: "/api/v1/domains/api.example.com/switch", body: `{"new_tag": "green"}`},
			wantField: "http_to_https = false",
		},
		{
			name:      "backend",
			item:      "/api/v1/backends/web-v3",
			a:         request{method: "PUT", path: "/api/v1/backends/web-v3", body: `{"address": "10.0.0.31:3000"}`},
			b:         request{method: "DELETE", path: "/api/v1/backends/web-v3?force=true"},
			wantField: `address = '10.0.0.31:3000'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readA, readB := e.get(t, tt.item), e.get(t, tt.item)
			tagA, tagB := readA.header.Get("ETag"), readB.header.Get("ETag")
			if tagA == "" || tagA != tagB {
				t.Fatalf("ETags %q and %q", tagA, tagB)
			}

			tt.a.header = map[string]string{"If-Match": tagA}
			ra := e.do(t, tt.a)
			if ra.code != 200 {
				t.Fatalf("A's %s with the current ETag = %d %s", tt.a.method, ra.code, ra.body)
			}
			newTag := ra.header.Get("ETag")
			if newTag == tagA {
				t.Fatalf("A's change kept ETag %s", newTag)
			}
			fileAfterA, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(fileAfterA, []byte(tt.wantField)) {
				t.Fatalf("A's change is not in the file:\n%s", fileAfterA)
			}
			cfgAfterA := store.Config()

			tt.b.header = map[string]string{"If-Match": tagB}
			rb := e.do(t, tt.b)
			if rb.code != http.StatusPreconditionFailed {
				t.Fatalf("B's %s with the stale ETag = %d %s, want 412", tt.b.method, rb.code, rb.body)
			}
			checkJSONError(t, rb)
			if !bytes.Contains(rb.body, []byte(newTag[1:len(newTag)-1])) {
				t.Errorf("412 does not tell the current ETag %s: %s", newTag, rb.body)
			}
			fileAfterB, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fileAfterA, fileAfterB) {
				t.Errorf("B's refused change altered the file:\n%s\n---\n%s", fileAfterA, fileAfterB)
			}
			if store.Config() != cfgAfterA {
				t.Error("B's refused change altered the configuration in force")
			}

			// B reads again and retries with the current tag.
			fresh := e.get(t, tt.item).header.Get("ETag")
			if fresh != newTag {
				t.Errorf("GET after A's change has ETag %s, A was answered %s", fresh, newTag)
			}
			tt.b.header["If-Match"] = fresh
			if rb := e.do(t, tt.b); rb.code != 200 && rb.code != 204 {
				t.Errorf("B's retry with the fresh ETag = %d %s", rb.code, rb.body)
			}
		})
	}
}

// TestIfMatch covers the forms of If-Match on every write it applies to.
func TestIfMatch(t *testing.T) {
	t.Parallel()
	probe := newEnv(t)
	dtag := probe.get(t, "/api/v1/domains/example.com").header.Get("ETag")
	btag := probe.get(t, "/api/v1/backends/spare").header.Get("ETag")
	put := func(path, body, ifMatch string) request {
		return request{method: "PUT", path: path, body: body, header: map[string]string{"If-Match": ifMatch}}
	}
	tests := []struct {
		name     string
		req      request
		wantCode int
	}{
		{name: "domain PUT, current tag", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, dtag), wantCode: 200},
		{name: "domain PUT, URL in other case", req: put("/api/v1/domains/Example.COM", `{"http_to_https": false}`, dtag), wantCode: 200},
		{name: "domain PUT, tag among others", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, `"0000000000000000", `+dtag), wantCode: 200},
		{name: "domain PUT, star", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, "*"), wantCode: 200},
		{name: "domain PUT, other tag", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, `"0000000000000000"`), wantCode: 412},
		{name: "domain PUT, weak form of the tag", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, "W/"+dtag), wantCode: 412},
		{name: "domain PUT, tag without quotes", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, dtag[1:len(dtag)-1]), wantCode: 412},
		{name: "domain PUT, empty If-Match", req: put("/api/v1/domains/example.com", `{"http_to_https": false}`, ""), wantCode: 412}, // present, matches nothing
		{name: "domain PUT, missing, star", req: put("/api/v1/domains/nope.example.com", `{"http_to_https": false}`, "*"), wantCode: 412},
		{name: "domain PUT, missing, tag", req: put("/api/v1/domains/nope.example.com", `{"http_to_https": false}`, dtag), wantCode: 412},
		{name: "domain PUT, missing, no If-Match", req: request{method: "PUT", path: "/api/v1/domains/nope.example.com", body: `{"http_to_https": false}`}, wantCode: 404},
		{name: "domain PUT, stale tag and invalid body", req: put("/api/v1/domains/example.com", `{"lb_policy": "random"}`, `"0000000000000000"`), wantCode: 412},
		{name: "domain PUT, malformed body first", req: put("/api/v1/domains/example.com", `{"lb_policy": `, `"0000000000000000"`), wantCode: 400},
		{name: "switch, current tag", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`,
			header: map[string]string{"If-Match": dtag}}, wantCode: 200},
		{name: "switch, other tag", req: request{method: "POST", path: "/api/v1/domains/example.com/switch", body: `{"new_tag": "green"}`,
			header: map[string]string{"If-Match": `"0000000000000000"`}}, wantCode: 412},
		{name: "switch, missing domain, star", req: request{method: "POST", path: "/api/v1/domains/nope.example.com/switch", body: `{"new_tag": "green"}`,
			header: map[string]string{"If-Match": "*"}}, wantCode: 412},
		{name: "domain DELETE, current tag", req: request{method: "DELETE", path: "/api/v1/domains/example.com", header: map[string]string{"If-Match": dtag}}, wantCode: 204},
		{name: "domain DELETE, other tag", req: request{method: "DELETE", path: "/api/v1/domains/example.com", header: map[string]string{"If-Match": `"0000000000000000"`}}, wantCode: 412},
		{name: "domain DELETE, missing, star", req: request{method: "DELETE", path: "/api/v1/domains/nope.example.com", header: map[string]string{"If-Match": "*"}}, wantCode: 412},
		{name: "backend PUT, current tag", req: put("/api/v1/backends/spare", `{"tags": ["x"]}`, btag), wantCode: 200},
		{name: "backend PUT, domain's tag", req: put("/api/v1/backends/spare", `{"tags": ["x"]}`, dtag), wantCode: 412},
		{name: "backend PUT, missing, star", req: put("/api/v1/backends/nope", `{"tags": ["x"]}`, "*"), wantCode: 412},
		{name: "backend DELETE, current tag", req: request{method: "DELETE", path: "/api/v1/backends/spare", header: map[string]string{"If-Match": btag}}, wantCode: 204},
		{name: "backend DELETE, star", req: request{method: "DELETE", path: "/api/v1/backends/spare", header: map[string]string{"If-Match": "*"}}, wantCode: 204},
		{name: "backend DELETE, other tag", req: request{method: "DELETE", path: "/api/v1/backends/spare", header: map[string]string{"If-Match": `"0000000000000000"`}}, wantCode: 412},
		{name: "backend DELETE, missing, star", req: request{method: "DELETE", path: "/api/v1/backends/nope", header: map[string]string{"If-Match": "*"}}, wantCode: 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			before := e.store.Config()
			r := e.do(t, tt.req)
			if r.code != tt.wantCode {
				t.Fatalf("%s %s (If-Match %q) = %d %s, want %d", tt.req.method, tt.req.path, tt.req.header["If-Match"], r.code, r.body, tt.wantCode)
			}
			if r.code >= 400 {
				checkJSONError(t, r)
				if e.store.Config() != before || e.p.Count() != 0 {
					t.Error("a refused request changed the configuration")
				}
			}
		})
	}
}
