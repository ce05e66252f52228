package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestManualFlow follows the manual's curl sequence: start with no hosts and
// no backends, register backends and a domain over the API, route by Host,
// switch the domain's tag and back, edit and delete.
func TestManualFlow(t *testing.T) {
	t.Parallel()
	procs := map[string]*backendProc{}
	for _, id := range []string{"a1", "a2", "b1", "b2"} {
		procs[id] = startBackend(t, id)
	}
	p := newProxy(t, conf{})

	var none []any
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains", nil, &none)
	if len(none) != 0 {
		t.Fatalf("GET /domains on an empty config: %v, want []", none)
	}
	if status, body, _ := p.tryAPI(http.MethodGet, "/health", nil); status != http.StatusOK || strings.TrimSpace(string(body)) != "OK" {
		t.Fatalf("GET /health: %d %q, want 200 OK", status, body)
	}

	// Backends, posted out of order.
	for _, id := range []string{"a2", "b1", "a1", "b2"} {
		tag := id[:1]
		in := map[string]any{"id": id, "address": procs[id].Addr, "tags": []string{tag}}
		var got backendObj
		p.mustAPI(t, http.StatusCreated, http.MethodPost, "/backends", in, &got)
		if got.ID != id || got.Address != procs[id].Addr || !slices.Equal(got.Tags, []string{tag}) {
			t.Fatalf("POST /backends %v answered %+v", in, got)
		}
	}

	// Domains, also out of order.
	for _, d := range []domainConf{{"example.com", "a"}, {"alpha.example.org", "b"}} {
		var got domainObj
		p.mustAPI(t, http.StatusCreated, http.MethodPost, "/domains",
			map[string]string{"domain": d.Domain, "enabled_backends_tag": d.Tag}, &got)
		if got.Domain != d.Domain || got.EnabledBackendsTag != d.Tag || got.HTTPToHTTPS == nil || !*got.HTTPToHTTPS {
			t.Fatalf("POST /domains %v answered %+v (http_to_https should default to true)", d, got)
		}
	}

	// Lists are sorted.
	var bs []backendObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &bs)
	var ids []string
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	if want := []string{"a1", "a2", "b1", "b2"}; !slices.Equal(ids, want) {
		t.Fatalf("GET /backends ids %v, want %v", ids, want)
	}
	var ds []domainObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains", nil, &ds)
	var names []string
	for _, d := range ds {
		names = append(names, d.Domain)
	}
	if want := []string{"alpha.example.org", "example.com"}; !slices.Equal(names, want) {
		t.Fatalf("GET /domains %v, want %v", names, want)
	}
	var one domainObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/example.com", nil, &one)
	if one.EnabledBackendsTag != "a" {
		t.Fatalf("GET /domains/example.com: %+v", one)
	}

	// Round robin over the "a" backends only.
	counts := map[string]int{}
	prev := ""
	for i := range 10 {
		id := p.getEcho(t, "example.com", "/rr").BackendID
		counts[id]++
		if id == prev {
			t.Errorf("request %d went to %s again; round robin should alternate", i, id)
		}
		prev = id
	}
	if counts["a1"] != 5 || counts["a2"] != 5 || len(counts) != 2 {
		t.Fatalf("10 requests to example.com went to %v, want a1:5 a2:5", counts)
	}

	// Host matching ignores case, port and a trailing dot.
	for _, host := range []string{"EXAMPLE.COM", "example.com:8080", "example.com.", "Example.Com.:80"} {
		e := p.getEcho(t, host, "/host")
		if !strings.HasPrefix(e.BackendID, "a") {
			t.Errorf("Host %q went to %s, want an \"a\" backend", host, e.BackendID)
		}
	}
	if e := p.getEcho(t, "alpha.example.org", "/"); !strings.HasPrefix(e.BackendID, "b") {
		t.Errorf("alpha.example.org went to %s, want a \"b\" backend", e.BackendID)
	}

	// Switch to b: the answer is the domain object, the very next request
	// goes to b.
	status, raw, err := p.tryAPI(http.MethodPost, "/domains/example.com/switch", `{"new_tag": "b"}`)
	if err != nil || status != http.StatusOK {
		t.Fatalf("switch to b: %d %s %v", status, raw, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("switch answer is not JSON: %q", raw)
	}
	for _, k := range []string{"domain", "enabled_backends_tag", "http_to_https"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("switch answer %s lacks %q", raw, k)
		}
	}
	if obj["domain"] != "example.com" || obj["enabled_backends_tag"] != "b" {
		t.Fatalf("switch answer %s", raw)
	}
	for range 4 {
		if id := p.getEcho(t, "example.com", "/").BackendID; !strings.HasPrefix(id, "b") {
			t.Fatalf("after the switch to b a request went to %s", id)
		}
	}

	// Roll back.
	if d := p.switchTag(t, "example.com", "a"); d.EnabledBackendsTag != "a" {
		t.Fatalf("roll back answered %+v", d)
	}
	for range 4 {
		if id := p.getEcho(t, "example.com", "/").BackendID; !strings.HasPrefix(id, "a") {
			t.Fatalf("after the roll back to a a request went to %s", id)
		}
	}

	// PUT is a partial update: tags only, then address only.
	var upd backendObj
	p.mustAPI(t, http.StatusOK, http.MethodPut, "/backends/a2", map[string]any{"tags": []string{"a", "canary"}}, &upd)
	if upd.Address != procs["a2"].Addr || !slices.Equal(upd.Tags, []string{"a", "canary"}) {
		t.Fatalf("PUT tags answered %+v", upd)
	}
	a2v2 := startBackend(t, "a2-v2")
	p.mustAPI(t, http.StatusOK, http.MethodPut, "/backends/a2", map[string]any{"address": a2v2.Addr}, &upd)
	if upd.Address != a2v2.Addr || !slices.Equal(upd.Tags, []string{"a", "canary"}) {
		t.Fatalf("PUT address answered %+v", upd)
	}
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends/a2", nil, &upd)
	if upd.Address != a2v2.Addr || !slices.Equal(upd.Tags, []string{"a", "canary"}) {
		t.Fatalf("GET after PUT: %+v", upd)
	}
	seen := map[string]int{}
	for range 4 {
		seen[p.getEcho(t, "example.com", "/").BackendID]++
	}
	if seen["a1"] != 2 || seen["a2-v2"] != 2 {
		t.Fatalf("after moving a2 to a new address requests went to %v, want a1:2 a2-v2:2", seen)
	}

	// DELETE.
	p.mustAPI(t, http.StatusNoContent, http.MethodDelete, "/backends/b2", nil, nil)
	p.mustAPI(t, http.StatusNoContent, http.MethodDelete, "/domains/alpha.example.org", nil, nil)
	for _, path := range []string{"/backends/b2", "/domains/alpha.example.org", "/domains/nowhere.example.com", "/backends/nobody"} {
		var e map[string]string
		p.mustAPI(t, http.StatusNotFound, http.MethodGet, path, nil, &e)
		if e["error"] == "" {
			t.Errorf("GET %s: 404 without a JSON error: %v", path, e)
		}
	}
	if resp, body := p.get(t, "alpha.example.org", "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted domain still answers %d %q", resp.StatusCode, body)
	}

	// Everything above was written back into the file.
	requireValid(t, p.Config)
	var file struct {
		VirtualHosts []map[string]any `toml:"virtual_hosts"`
		Backends     []map[string]any `toml:"backends"`
	}
	if err := toml.Unmarshal(readFile(t, p.Config), &file); err != nil {
		t.Fatalf("config file: %v", err)
	}
	if len(file.VirtualHosts) != 1 || file.VirtualHosts[0]["domain"] != "example.com" || file.VirtualHosts[0]["enabled_backends_tag"] != "a" {
		t.Errorf("config file virtual_hosts = %v, want example.com -> a", file.VirtualHosts)
	}
	var fileIDs []string
	for _, b := range file.Backends {
		id, _ := b["id"].(string)
		fileIDs = append(fileIDs, id)
		if id == "a2" && b["address"] != a2v2.Addr {
			t.Errorf("config file has a2 at %v, want %s", b["address"], a2v2.Addr)
		}
	}
	if want := []string{"a1", "a2", "b1"}; !slices.Equal(fileIDs, want) {
		t.Errorf("config file backends %v, want %v", fileIDs, want)
	}
}

// TestBadAPIInput sends invalid requests to the management API: each gets a
// JSON error with the right status, and the configuration file is left
// byte for byte as it was.
func TestBadAPIInput(t *testing.T) {
	t.Parallel()
	a := startBackend(t, "a1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"exists.example.com", "a"}},
		Backends: []backendConf{be("a1", a, "a")},
	})
	big := `{"id": "big", "address": "127.0.0.1:1", "tags": ["` + strings.Repeat("x", 2<<20) + `"]}`

	cases := []struct {
		name         string
		method, path string
		contentType  string
		body         string
		want         int
	}{
		{"malformed JSON", "POST", "/backends", "application/json", `{"id": "x", "address": `, 400},
		{"not an object", "POST", "/domains", "application/json", `["example.org"]`, 400},
		{"trailing data", "POST", "/backends", "application/json", `{"id": "x", "address": "127.0.0.1:1"} {}`, 400},
		{"empty body", "POST", "/domains", "application/json", ``, 400},
		{"unknown field", "POST", "/backends", "application/json", `{"id": "x", "address": "127.0.0.1:1", "tags": ["a"], "colour": "red"}`, 400},
		{"unknown field in domain", "POST", "/domains", "application/json", `{"domain": "new.example.com", "enabled_backends_tag": "a", "tag": "b"}`, 400},
		{"wrong type tags", "POST", "/backends", "application/json", `{"id": "x", "address": "127.0.0.1:1", "tags": "a"}`, 400},
		{"wrong type http_to_https", "POST", "/domains", "application/json", `{"domain": "new.example.com", "enabled_backends_tag": "a", "http_to_https": "yes"}`, 400},
		{"missing address", "POST", "/backends", "application/json", `{"id": "x", "tags": ["a"]}`, 400},
		{"missing id", "POST", "/backends", "application/json", `{"address": "127.0.0.1:1"}`, 400},
		{"missing tag", "POST", "/domains", "application/json", `{"domain": "new.example.com"}`, 400},
		{"missing new_tag", "POST", "/domains/exists.example.com/switch", "application/json", `{}`, 400},
		{"invalid domain", "POST", "/domains", "application/json", `{"domain": "bad_domain!", "enabled_backends_tag": "a"}`, 400},
		{"IP as domain", "POST", "/domains", "application/json", `{"domain": "1.2.3.4", "enabled_backends_tag": "a"}`, 400},
		{"invalid tag", "POST", "/domains", "application/json", `{"domain": "new.example.com", "enabled_backends_tag": "a b"}`, 400},
		{"invalid switch tag", "POST", "/domains/exists.example.com/switch", "application/json", `{"new_tag": "no way"}`, 400},
		{"address without port", "POST", "/backends", "application/json", `{"id": "x", "address": "nohost", "tags": ["a"]}`, 400},
		{"address port out of range", "POST", "/backends", "application/json", `{"id": "x", "address": "h:99999", "tags": ["a"]}`, 400},
		{"invalid backend id", "POST", "/backends", "application/json", `{"id": "a/b", "address": "127.0.0.1:1", "tags": ["a"]}`, 400},
		{"PUT invalid address", "PUT", "/backends/a1", "application/json", `{"address": "nohost"}`, 400},
		{"PUT rename", "PUT", "/backends/a1", "application/json", `{"id": "other"}`, 400},
		{"duplicate domain", "POST", "/domains", "application/json", `{"domain": "exists.example.com", "enabled_backends_tag": "a"}`, 409},
		{"duplicate domain other case", "POST", "/domains", "application/json", `{"domain": "EXISTS.example.com.", "enabled_backends_tag": "a"}`, 409},
		{"duplicate backend", "POST", "/backends", "application/json", `{"id": "a1", "address": "127.0.0.1:1", "tags": ["a"]}`, 409},
		{"switch to a tag with no backend", "POST", "/domains/exists.example.com/switch", "application/json", `{"new_tag": "ghost"}`, 409},
		{"PUT tag with no backend", "PUT", "/domains/exists.example.com", "application/json", `{"enabled_backends_tag": "ghost"}`, 409},
		{"delete last backend of a tag in use", "DELETE", "/backends/a1", "", ``, 409},
		{"untag last backend of a tag in use", "PUT", "/backends/a1", "application/json", `{"tags": ["z"]}`, 409},
		{"switch missing domain", "POST", "/domains/missing.example.com/switch", "application/json", `{"new_tag": "a"}`, 404},
		{"PUT missing backend", "PUT", "/backends/missing", "application/json", `{"tags": ["a"]}`, 404},
		{"DELETE missing domain", "DELETE", "/domains/missing.example.com", "", ``, 404},
		{"body over 1 MiB", "POST", "/backends", "application/json", big, 413},
		{"text/plain", "POST", "/backends", "text/plain", `{"id": "x", "address": "127.0.0.1:1", "tags": ["a"]}`, 415},
		{"form", "POST", "/domains", "application/x-www-form-urlencoded", `domain=new.example.com&enabled_backends_tag=a`, 415},
		{"PATCH domains", "PATCH", "/domains", "application/json", `{}`, 405},
		{"DELETE domain list", "DELETE", "/domains", "", ``, 405},
		{"GET switch", "GET", "/domains/exists.example.com/switch", "", ``, 405},
		{"PUT backend list", "PUT", "/backends", "application/json", `[]`, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := readFile(t, p.Config)
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			} else {
				body = strings.NewReader("")
			}
			resp, data, err := p.apiRaw(tc.method, tc.path, tc.contentType, body)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: status %d, want %d; body %s", tc.method, tc.path, resp.StatusCode, tc.want, data)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e map[string]any
			if err := json.Unmarshal(data, &e); err != nil {
				t.Errorf("body is not JSON: %q", data)
			} else if msg, _ := e["error"].(string); msg == "" || len(e) != 1 {
				t.Errorf("body %s, want {\"error\": \"...\"}", data)
			}
			if tc.want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if after := readFile(t, p.Config); !bytes.Equal(before, after) {
				t.Errorf("a refused call changed the config file:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	// Nothing changed in the running configuration either.
	var ds []domainObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains", nil, &ds)
	if len(ds) != 1 || ds[0].Domain != "exists.example.com" || ds[0].EnabledBackendsTag != "a" {
		t.Fatalf("domains after the refused calls: %+v", ds)
	}
	var bs []backendObj
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/backends", nil, &bs)
	if len(bs) != 1 || bs[0].ID != "a1" || bs[0].Address != a.Addr || !slices.Equal(bs[0].Tags, []string{"a"}) {
		t.Fatalf("backends after the refused calls: %+v", bs)
	}

	// The refused switch goes through with "force": true.
	before := readFile(t, p.Config)
	var d domainObj
	p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/exists.example.com/switch", `{"new_tag": "ghost", "force": true}`, &d)
	if d.EnabledBackendsTag != "ghost" {
		t.Fatalf("forced switch answered %+v", d)
	}
	if bytes.Equal(before, readFile(t, p.Config)) {
		t.Errorf("the forced switch was not written to the config file")
	}
	if resp, body := p.get(t, "exists.example.com", "/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("domain switched to a tag with no backend answers %d %q, want 503", resp.StatusCode, body)
	}
}
