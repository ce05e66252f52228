package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"fronttier/internal/backend"
	"fronttier/internal/cluster"
	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/rollout"
	"fronttier/internal/state"
	"fronttier/internal/store"
	"fronttier/internal/testutil"
)

const oaToken = "s3cret-token"

// fakeCluster is a Cluster answering info, or failing with err.
type fakeCluster struct{ err error }

func (c fakeCluster) Info(context.Context) (any, error) {
	if c.err != nil {
		return nil, c.err
	}
	t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return cluster.Info{Store: "etcd", Revision: 7, Nodes: []cluster.Node{
		{Name: "a", APIAddr: "10.0.0.1:9090", Version: "v1", Revision: 7, StartedAt: t, LastSeen: t},
	}}, nil
}

// fakeStats is a domain without traffic.
type fakeStats struct{}

func (fakeStats) Stats(string) map[string]metrics.TagStats { return nil }

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(openapiDoc))
	if err != nil {
		t.Fatalf("parse openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json is version %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// oaChecker sends requests to APIs and validates each request and answer
// against the document, recording which operation answered which status.
type oaChecker struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	seen   map[string]map[int]bool // "METHOD /template" -> statuses seen
}

// oaCall is one scripted request. Without noAuth it carries the token.
type oaCall struct {
	srv         *httptest.Server
	method      string
	path        string // below /api/v1
	body        string
	contentType string // "" with a body: application/json; "-": none
	header      map[string]string
	noAuth      bool
	want        int
	// badRequest says the document itself refuses the request (so a
	// client validating against it would not send it).
	badRequest bool
}

func (c *oaChecker) do(call oaCall) response {
	t := c.t
	t.Helper()
	name := fmt.Sprintf("%s %s", call.method, call.path)
	newReq := func(base string) *http.Request {
		var body io.Reader
		if call.body != "" {
			body = strings.NewReader(call.body)
		}
		req, err := http.NewRequest(call.method, base+"/api/v1"+call.path, body)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case call.contentType == "-":
		case call.contentType != "":
			req.Header.Set("Content-Type", call.contentType)
		case call.body != "":
			req.Header.Set("Content-Type", "application/json")
		}
		if !call.noAuth {
			req.Header.Set("Authorization", "Bearer "+oaToken)
		}
		for k, v := range call.header {
			req.Header.Set(k, v)
		}
		return req
	}
	resp, err := call.srv.Client().Do(newReq(call.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := response{code: resp.StatusCode, header: resp.Header, body: b}
	if got.code != call.want {
		t.Errorf("%s: status %d, want %d: %s", name, got.code, call.want, b)
	}

	// Validate against the document, as a client would see the exchange.
	vreq := newReq("http://localhost")
	if call.method == http.MethodHead {
		vreq.Method = http.MethodGet // HEAD is answered wherever GET is, as GET without a body
	}
	route, params, err := c.router.FindRoute(vreq)
	if errors.Is(err, routers.ErrMethodNotAllowed) {
		c.checkMethodNotAllowed(name, vreq, got)
		return got
	}
	if err != nil {
		t.Errorf("%s: not in the document: %v", name, err)
		return got
	}
	key := call.method + " " + route.Path
	if c.seen[key] == nil {
		c.seen[key] = map[int]bool{}
	}
	c.seen[key][got.code] = true
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			MultiError: true,
			AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
				if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
					return errors.New("no bearer token")
				}
				return nil
			},
		},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	wantReqErr := call.badRequest || (call.noAuth && route.Path != "/health")
	switch {
	case reqErr != nil && !wantReqErr:
		t.Errorf("%s: the document refuses the request: %v", name, reqErr)
	case reqErr == nil && wantReqErr:
		t.Errorf("%s: the document accepts a request the API must refuse", name)
	}
	if call.method == http.MethodHead {
		return got
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 got.code,
		Header:                 got.header,
		Body:                   io.NopCloser(bytes.NewReader(got.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("%s: answer %d does not match the document: %v\n%s", name, got.code, err, got.body)
	}
	return got
}

// checkMethodNotAllowed checks a 405: the document has no such
// operation, the body is an Error and Allow lists the document's methods
// (and HEAD with GET).
func (c *oaChecker) checkMethodNotAllowed(name string, req *http.Request, got response) {
	t := c.t
	t.Helper()
	if got.code != http.StatusMethodNotAllowed {
		t.Errorf("%s: not in the document, yet answered %d", name, got.code)
		return
	}
	c.checkError(name, got)
	if err := c.doc.Components.Responses["MethodNotAllowed"].Value.Headers["Allow"].Value.Schema.Value.VisitJSON(got.header.Get("Allow")); err != nil {
		t.Errorf("%s: Allow: %v", name, err)
	}
	for tmpl, item := range c.doc.Paths.Map() {
		if match(tmpl, strings.TrimPrefix(req.URL.Path, "/api/v1")) {
			if want := allowFor(item); got.header.Get("Allow") != want {
				t.Errorf("%s: Allow %q, the document has %q", name, got.header.Get("Allow"), want)
			}
			c.seen["405 "+tmpl] = map[int]bool{405: true}
			return
		}
	}
	t.Errorf("%s: no path of the document matches", name)
}

// checkError checks got's body is the shared Error component.
func (c *oaChecker) checkError(name string, got response) {
	c.t.Helper()
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("%s: Content-Type %q", name, ct)
	}
	var v any
	if err := json.Unmarshal(got.body, &v); err != nil {
		c.t.Errorf("%s: %v", name, err)
		return
	}
	if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		c.t.Errorf("%s: error body does not match Error: %v", name, err)
	}
}

// match reports whether path fits the template (one segment per {param}).
func match(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// allowFor is the Allow header the API sends for a path item.
func allowFor(item *openapi3.PathItem) string {
	var m []string
	for method := range item.Operations() {
		m = append(m, method)
	}
	if item.Get != nil {
		m = append(m, http.MethodHead)
	}
	slices.Sort(m)
	return strings.Join(m, ", ")
}

func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc, router := loadOpenAPI(t)
	c := &oaChecker{t: t, doc: doc, router: router, seen: map[string]map[int]bool{}}

	p := &testutil.Persister{}
	st, err := state.New(testConfig(), backend.NewRegistry(nil, nil), p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.Backend("web-v1").SetHealth(backend.Healthy)
	v2 := st.Backend("web-v2")
	v2.SetHealth(backend.Unhealthy)
	v2.SetStatus(backend.Status{LastCheck: lastCheck, LastError: "connection refused", ConsecutiveFailures: 3})
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, "proxy_requests_total 1\n")
	})
	serve := func(o Options) *httptest.Server {
		o.Store, o.Token = st, oaToken
		srv := httptest.NewServer(New(o))
		t.Cleanup(srv.Close)
		return srv
	}
	viewer := []config.APIUser{{Name: "viewer", Role: config.RoleViewer, TokenSHA256: hashHex("viewer-token")}}
	rollouts := rollout.New(rollout.Options{Store: st, Stats: fakeStats{}})
	full := serve(Options{Certs: &fakeRenewer{}, Metrics: metrics, Cluster: fakeCluster{}, Users: viewer, Rollouts: rollouts, Stats: trafficStats()})
	bare := serve(Options{})                                                                        // no certificates, metrics, cluster
	noRenew := serve(Options{Certs: &fakeCerts{err: fmt.Errorf("reload: %w", errors.New("boom"))}}) // cannot renew; reload fails
	down := serve(Options{Cluster: fakeCluster{err: errors.New("etcd unreachable")}})

	type step = oaCall
	steps := []step{
		// operations
		{srv: full, method: "GET", path: "/health", noAuth: true, want: 200},
		{srv: full, method: "GET", path: "/metrics", want: 200},
		{srv: bare, method: "GET", path: "/metrics", want: 404},
		{srv: full, method: "GET", path: "/metrics", noAuth: true, want: 401},
		{srv: full, method: "GET", path: "/metrics", header: map[string]string{"Authorization": "Bearer wrong"}, want: 401},
		{srv: full, method: "GET", path: "/openapi.json", want: 200},
		{srv: full, method: "GET", path: "/openapi.json", noAuth: true, want: 401},
		{srv: full, method: "POST", path: "/openapi.json", want: 405},
		{srv: full, method: "GET", path: "/cluster", want: 200},
		{srv: bare, method: "GET", path: "/cluster", want: 404},
		{srv: down, method: "GET", path: "/cluster", want: 503},
		{srv: full, method: "GET", path: "/cluster", noAuth: true, want: 401},

		// domains
		{srv: full, method: "GET", path: "/domains", want: 200},
		{srv: full, method: "GET", path: "/domains", noAuth: true, want: 401},
		{srv: full, method: "HEAD", path: "/domains", want: 200},
		{srv: full, method: "PATCH", path: "/domains", want: 405},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"new.example.com","enabled_backends_tag":"a","lb_policy":"round_robin","canary":{"tag":"b","percent":10},"sticky":{"by":"ip"},"overrides":[{"header":"X-Beta","value":"1","tag":"b"}]}`, want: 201},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"new.example.com","enabled_backends_tag":"a"}`, want: 409},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"x.example.com"}`, want: 400, badRequest: true},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"x.example.com","enabled_backends_tag":"a","bogus":1}`, want: 400, badRequest: true},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":`, want: 400, badRequest: true},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"x.example.com","enabled_backends_tag":"a"}`, contentType: "text/plain", want: 415, badRequest: true},
		{srv: full, method: "POST", path: "/domains", body: `{"domain":"` + strings.Repeat("x", maxBody) + `","enabled_backends_tag":"a"}`, want: 413},
		{srv: full, method: "GET", path: "/domains/new.example.com", want: 200},
		{srv: full, method: "GET", path: "/domains/nope.example.com", want: 404},
		{srv: full, method: "PUT", path: "/domains/new.example.com", body: `{"http_to_https":false,"canary":null,"sticky":null,"overrides":[]}`, want: 200},
		{srv: full, method: "PUT", path: "/domains/new.example.com", body: `{"tls_enabled":"yes"}`, want: 400, badRequest: true},
		{srv: full, method: "PUT", path: "/domains/new.example.com", body: `{"enabled_backends_tag":"nobody"}`, want: 409},
		{srv: full, method: "PUT", path: "/domains/nope.example.com", body: `{"http_to_https":true}`, want: 404},
		{srv: full, method: "PUT", path: "/domains/new.example.com", body: `{"http_to_https":true}`, header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "PUT", path: "/domains/new.example.com", body: `{}`, contentType: "application/xml", want: 415, badRequest: true},
		{srv: full, method: "POST", path: "/domains/new.example.com/switch", body: `{"new_tag":"b"}`, want: 409},
		{srv: full, method: "POST", path: "/domains/new.example.com/switch", body: `{"new_tag":"b","force":true}`, header: map[string]string{"If-Match": "*"}, want: 200},
		{srv: full, method: "POST", path: "/domains/new.example.com/switch", body: `{}`, want: 400, badRequest: true},
		{srv: full, method: "POST", path: "/domains/nope.example.com/switch", body: `{"new_tag":"a"}`, want: 404},
		{srv: full, method: "POST", path: "/domains/new.example.com/switch", body: `{"new_tag":"a"}`, header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "POST", path: "/domains/new.example.com/switch", body: `{"new_tag":"a"}`, contentType: "text/html", want: 415, badRequest: true},
		{srv: full, method: "GET", path: "/domains/new.example.com/switch", want: 405},
		{srv: full, method: "PUT", path: "/domains/new.example.com/canary", body: `{"tag":"a","percent":25}`, want: 200},
		{srv: full, method: "PUT", path: "/domains/new.example.com/canary", body: `{"tag":"nobody","percent":25}`, want: 409},
		{srv: full, method: "PUT", path: "/domains/new.example.com/canary", body: `{"tag":"a"}`, want: 400, badRequest: true},
		{srv: full, method: "PUT", path: "/domains/nope.example.com/canary", body: `{"tag":"a","percent":5}`, want: 404},
		{srv: full, method: "PUT", path: "/domains/new.example.com/canary", body: `{"tag":"a","percent":5}`, header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "POST", path: "/domains/new.example.com/explain", body: `{"headers":{"X-Beta":"1"},"cookies":{"other":"x"},"client_ip":"192.0.2.1","query":"a=b"}`, want: 200},
		{srv: full, method: "POST", path: "/domains/new.example.com/explain", body: `{"client_ip":"not-an-ip"}`, want: 400},
		{srv: full, method: "POST", path: "/domains/nope.example.com/explain", body: `{}`, want: 404},
		{srv: full, method: "POST", path: "/domains/new.example.com/explain", body: `[]`, want: 400, badRequest: true},
		{srv: full, method: "DELETE", path: "/domains/new.example.com/canary", want: 200},
		{srv: full, method: "DELETE", path: "/domains/nope.example.com/canary", want: 404},
		{srv: full, method: "DELETE", path: "/domains/new.example.com/canary", header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "DELETE", path: "/domains/new.example.com", header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "DELETE", path: "/domains/new.example.com", want: 204},
		{srv: full, method: "DELETE", path: "/domains/new.example.com", want: 404},
		{srv: full, method: "POST", path: "/domains/new.example.com", want: 405},

		// backends
		{srv: full, method: "GET", path: "/backends", want: 200},
		{srv: full, method: "POST", path: "/backends", body: `{"id":"web-v9","address":"10.0.0.9:80","tags":["blue"],"weight":2}`, want: 201},
		{srv: full, method: "POST", path: "/backends", body: `{"id":"web-v9","address":"10.0.0.9:80"}`, want: 409},
		{srv: full, method: "POST", path: "/backends", body: `{"id":"web-v10"}`, want: 400, badRequest: true},
		{srv: full, method: "POST", path: "/backends", body: `{"id":"x","address":"a:1"}`, contentType: "text/plain", want: 415, badRequest: true},
		{srv: full, method: "POST", path: "/backends", body: `{"id":"` + strings.Repeat("x", maxBody) + `","address":"a:1"}`, want: 413},
		{srv: full, method: "GET", path: "/backends/web-v2", want: 200},
		{srv: full, method: "GET", path: "/backends/web-v9", want: 200},
		{srv: full, method: "GET", path: "/backends/nope", want: 404},
		{srv: full, method: "PUT", path: "/backends/web-v9", body: `{"tags":["blue","green"]}`, want: 200},
		{srv: full, method: "PUT", path: "/backends/web-v1", body: `{"tags":[]}`, want: 409},
		{srv: full, method: "PUT", path: "/backends/web-v9", body: `{"weight":"heavy"}`, want: 400, badRequest: true},
		{srv: full, method: "PUT", path: "/backends/nope", body: `{"weight":1}`, want: 404},
		{srv: full, method: "PUT", path: "/backends/web-v9", body: `{"weight":1}`, header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "DELETE", path: "/backends/web-v1", want: 409},
		{srv: full, method: "DELETE", path: "/backends/web-v9", header: map[string]string{"If-Match": `"0000000000000000"`}, want: 412},
		{srv: full, method: "DELETE", path: "/backends/web-v9?force=maybe", want: 400},
		{srv: full, method: "DELETE", path: "/backends/web-v9?force=true", want: 204},
		{srv: full, method: "DELETE", path: "/backends/web-v9", want: 404},
		{srv: full, method: "PATCH", path: "/backends/web-v1", want: 405},

		// certificates
		{srv: full, method: "GET", path: "/certificates", want: 200},
		{srv: bare, method: "GET", path: "/certificates", want: 200},
		{srv: full, method: "POST", path: "/certificates/example.com/reload", want: 200},
		{srv: bare, method: "POST", path: "/certificates/example.com/reload", want: 404},
		{srv: noRenew, method: "POST", path: "/certificates/example.com/reload", want: 500},
		{srv: full, method: "POST", path: "/certificates/acme.example.com/renew", want: 202},
		{srv: full, method: "POST", path: "/certificates/file.example.com/renew", want: 409},
		{srv: full, method: "POST", path: "/certificates/nope.example.com/renew", want: 404},
		{srv: noRenew, method: "POST", path: "/certificates/acme.example.com/renew", want: 501},
		{srv: full, method: "GET", path: "/certificates/acme.example.com/renew", want: 405},
	}
	big := `"` + strings.Repeat("x", maxBody) + `"`
	steps = append(steps,
		step{srv: full, method: "POST", path: "/domains/example.com/explain", body: `{"query":` + big + `}`, want: 413},
		step{srv: full, method: "POST", path: "/domains/example.com/explain", body: `{}`, contentType: "text/plain", want: 415, badRequest: true},
		step{srv: full, method: "POST", path: "/domains/example.com/switch", body: `{"new_tag":` + big + `}`, want: 413},
		step{srv: full, method: "PUT", path: "/domains/example.com", body: `{"lb_policy":` + big + `}`, want: 413},
		step{srv: full, method: "PUT", path: "/domains/example.com/canary", body: `{"tag":` + big + `,"percent":1}`, want: 413},
		step{srv: full, method: "PUT", path: "/domains/example.com/canary", body: `{"tag":"a","percent":1}`, contentType: "text/plain", want: 415, badRequest: true},
		step{srv: full, method: "PUT", path: "/backends/spare", body: `{"address":` + big + `}`, want: 413},
		step{srv: full, method: "PUT", path: "/backends/spare", body: `{"weight":1}`, contentType: "text/plain", want: 415, badRequest: true},
		step{srv: full, method: "HEAD", path: "/domains/example.com", want: 200},
		step{srv: full, method: "HEAD", path: "/health", noAuth: true, want: 200},
	)
	// rollouts, on api.example.com (tag b; a is healthy, b is not)
	rolloutBody := `{"to_tag":"a","steps":[5,100],"step_secs":3600,"max_error_rate":0.01,"max_p99_ms":800,"min_requests":10}`
	greenBody := `{"to_tag":"green","steps":[50,100],"step_secs":3600,"max_error_rate":0.01}`
	const ro = "/domains/api.example.com/rollout"
	steps = append(steps,
		step{srv: full, method: "GET", path: ro, want: 404},
		step{srv: full, method: "POST", path: ro, body: `{"to_tag":"a"}`, want: 400, badRequest: true},
		step{srv: full, method: "POST", path: ro, body: `{"to_tag":"a","steps":[50,25],"step_secs":1,"max_error_rate":0.01}`, want: 400},
		step{srv: full, method: "POST", path: ro, body: `{"to_tag":` + big + `,"steps":[100],"step_secs":1,"max_error_rate":0}`, want: 413},
		step{srv: full, method: "POST", path: ro, body: rolloutBody, contentType: "text/plain", want: 415, badRequest: true},
		step{srv: full, method: "POST", path: "/domains/nope.example.com/rollout", body: rolloutBody, want: 404},
		step{srv: bare, method: "POST", path: ro, body: rolloutBody, want: 404},
		step{srv: full, method: "POST", path: "/domains/example.com/rollout", body: `{"to_tag":"b","steps":[100],"step_secs":1,"max_error_rate":0}`, want: 409},
		step{srv: full, method: "POST", path: ro + "/pause", want: 404}, // no rollout yet
		step{srv: full, method: "POST", path: ro, body: rolloutBody, want: 201},
		step{srv: full, method: "POST", path: ro, body: rolloutBody, want: 409},
		step{srv: full, method: "GET", path: ro, want: 200},
		step{srv: full, method: "POST", path: ro + "/resume", want: 409},
		step{srv: full, method: "POST", path: ro + "/pause", want: 200},
		step{srv: full, method: "POST", path: ro + "/resume", want: 200},
		step{srv: full, method: "POST", path: ro + "/abort", want: 200},
		step{srv: full, method: "POST", path: ro + "/abort", want: 409},
		step{srv: full, method: "POST", path: ro + "/pause", want: 409},
		step{srv: full, method: "POST", path: ro + "/promote", want: 409},
		step{srv: full, method: "POST", path: "/domains/nope.example.com/rollout/pause", want: 404},
		step{srv: full, method: "POST", path: "/domains/nope.example.com/rollout/resume", want: 404},
		step{srv: full, method: "POST", path: "/domains/nope.example.com/rollout/promote", want: 404},
		step{srv: full, method: "POST", path: "/domains/nope.example.com/rollout/abort", want: 404},
		step{srv: full, method: "POST", path: ro, body: rolloutBody, want: 201},
		step{srv: full, method: "POST", path: ro + "/promote", want: 200},
		step{srv: full, method: "GET", path: ro, want: 200},
		step{srv: full, method: "POST", path: ro, body: greenBody, want: 201}, // left running for the failures below
		// stats: counts per tag, and the rollout just started
		step{srv: full, method: "GET", path: "/stats", want: 200},
		step{srv: full, method: "GET", path: "/stats", header: map[string]string{"Authorization": "Bearer viewer-token"}, want: 200},
		step{srv: bare, method: "GET", path: "/stats", want: 404},
	)
	// Every operation refuses a request without the token, but health;
	// every change refuses a viewer's valid request.
	viewerBodies := map[string]string{
		"POST /domains":                  `{"domain":"v.example.com","enabled_backends_tag":"a"}`,
		"PUT /domains/{domain}":          `{"enabled_backends_tag":"a"}`,
		"POST /domains/{domain}/switch":  `{"new_tag":"a"}`,
		"PUT /domains/{domain}/canary":   `{"tag":"a","percent":25}`,
		"POST /domains/{domain}/explain": `{}`,
		"POST /domains/{domain}/rollout": `{"to_tag":"b","steps":[100],"step_secs":1,"max_error_rate":0}`,
		"POST /backends":                 `{"id":"web-v8","address":"10.0.0.8:80"}`,
		"PUT /backends/{id}":             `{"address":"10.0.0.8:80"}`,
	}
	for tmpl, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if tmpl == "/health" {
				continue
			}
			path := strings.NewReplacer("{domain}", "example.com", "{id}", "web-v1").Replace(tmpl)
			steps = append(steps, step{srv: full, method: method, path: path, noAuth: true, want: 401})
			if method != http.MethodGet { // a change a viewer may not make
				steps = append(steps, step{srv: full, method: method, path: path, body: viewerBodies[method+" "+tmpl],
					header: map[string]string{"Authorization": "Bearer viewer-token"}, want: 403})
			}
		}
	}
	for _, s := range steps {
		c.do(s)
	}

	// A certificate reload the certificates refuse as invalid or busy.
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&Error{Code: http.StatusBadRequest, Msg: "certificate not reloaded"}, 400},
		{&Error{Code: http.StatusConflict, Msg: "busy"}, 409},
	} {
		c.do(step{srv: serve(Options{Certs: &fakeCerts{err: tc.err}}), method: "POST", path: "/certificates/example.com/reload", want: tc.want})
	}

	// Saving fails (500) or the store is unreachable (503): every change.
	changes := []step{
		{method: "POST", path: "/domains", body: `{"domain":"z.example.com","enabled_backends_tag":"a"}`},
		{method: "PUT", path: "/domains/example.com", body: `{"http_to_https":false}`},
		{method: "DELETE", path: "/domains/api.example.com"},
		{method: "POST", path: "/domains/example.com/switch", body: `{"new_tag":"green","force":true}`},
		{method: "PUT", path: "/domains/example.com/canary", body: `{"tag":"green","percent":5,"force":true}`},
		{method: "DELETE", path: "/domains/example.com/canary"},
		{method: "POST", path: "/backends", body: `{"id":"z","address":"10.0.0.1:1"}`},
		{method: "PUT", path: "/backends/spare", body: `{"weight":4}`},
		{method: "DELETE", path: "/backends/spare"},
		{method: "POST", path: "/domains/api.example.com/rollout/pause"},
		{method: "POST", path: "/domains/api.example.com/rollout/promote"},
		{method: "POST", path: "/domains/api.example.com/rollout/abort"},
	}
	for _, fail := range []struct {
		err  error
		want int
	}{{errors.New("disk full"), 500}, {fmt.Errorf("%w: etcd down", store.ErrUnavailable), 503}} {
		p.SetErr(fail.err)
		for _, s := range changes {
			s.srv, s.want = full, fail.want
			c.do(s)
		}
	}
	p.SetErr(nil)

	// Every operation was exercised, and every status it declares either
	// was, or is listed in oaUnreachable.
	unchecked := map[string]bool{}
	var lines []string
	for tmpl, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + tmpl
			seen := c.seen[key]
			var got, missing []string
			for code := range op.Responses.Map() {
				n, _ := strconv.Atoi(code)
				if seen[n] {
					got = append(got, code)
				} else {
					missing = append(missing, code)
					unchecked[key+" "+code] = true
				}
			}
			slices.Sort(got)
			slices.Sort(missing)
			lines = append(lines, fmt.Sprintf("%-7s %-32s checked %v, not %v", method, tmpl, got, missing))
			if len(seen) == 0 {
				t.Errorf("%s: never exercised", key)
			}
		}
	}
	slices.Sort(lines)
	t.Logf("coverage:\n%s", strings.Join(lines, "\n"))
	for k := range unchecked {
		if !oaUnreachable[k] {
			t.Errorf("%s: declared but not checked", k)
		}
	}
}

// oaUnreachable are declared statuses this test does not provoke, with
// why they are declared.
var oaUnreachable = map[string]bool{
	"DELETE /domains/{domain} 409":              true, // a stored configuration that cannot be applied, or one changing under the request
	"DELETE /domains/{domain}/canary 409":       true, // the same
	"POST /certificates/{domain}/renew 500":     true, // an unexpected failure of the ACME side
	"POST /domains/{domain}/rollout 500":        true, // as pause, promote and abort, which are checked
	"POST /domains/{domain}/rollout 503":        true, // the same
	"POST /domains/{domain}/rollout/resume 500": true, // the same
	"POST /domains/{domain}/rollout/resume 503": true, // the same
}

// TestOpenAPIRoutes checks the document has every path and method the
// API registers, and nothing more: it reads the a.route calls of
// admin.go (New registers every endpoint there and the mux cannot list
// its patterns), then asks the running API each path's methods.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc, _ := loadOpenAPI(t)
	documented := map[string][]string{}
	for tmpl, item := range doc.Paths.Map() {
		documented["/api/v1"+tmpl] = slices.Sorted(maps.Keys(item.Operations()))
	}

	registered := map[string][]string{}
	f, err := parser.ParseFile(token.NewFileSet(), "admin.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "route" {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok {
			t.Fatalf("a.route with a pattern that is not a literal: %#v", call.Args[0])
		}
		pattern, _ := strconv.Unquote(lit.Value)
		var ms []string
		for _, elt := range call.Args[1].(*ast.CompositeLit).Elts {
			key := elt.(*ast.KeyValueExpr).Key.(*ast.SelectorExpr).Sel.Name // http.MethodGet
			ms = append(ms, strings.ToUpper(strings.TrimPrefix(key, "Method")))
		}
		slices.Sort(ms)
		registered[pattern] = ms
		return true
	})
	if len(registered) < 10 {
		t.Fatalf("found only %d a.route calls in admin.go", len(registered))
	}
	for p, ms := range registered {
		if !slices.Equal(documented[p], ms) {
			t.Errorf("%s: registered with %v, documented with %v", p, ms, documented[p])
		}
	}
	for p, ms := range documented {
		if _, ok := registered[p]; !ok {
			t.Errorf("%s %v: documented, not registered", p, ms)
		}
	}

	// The running API agrees: a method no path has gets 405 with the
	// document's methods in Allow.
	srv := httptest.NewServer(New(Options{Store: newEnv(t).store}))
	t.Cleanup(srv.Close)
	for tmpl, item := range doc.Paths.Map() {
		path := "/api/v1" + strings.NewReplacer("{domain}", "example.com", "{id}", "web-v1").Replace(tmpl)
		req, _ := http.NewRequest("PROPFIND", srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allowFor(item) {
			t.Errorf("PROPFIND %s: %d, Allow %q; want 405, Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"), allowFor(item))
		}
	}
}

// TestOpenAPIServed checks GET /api/v1/openapi.json answers the embedded
// document, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.get(t, "/api/v1/openapi.json")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" || string(r.body) != openapiDoc {
		t.Fatalf("GET /api/v1/openapi.json: %d %q, %d bytes", r.code, r.header.Get("Content-Type"), len(r.body))
	}
}
