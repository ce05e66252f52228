package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestCanaryOverrides: testers' overrides beat the split, whatever the
// share: a header, a cookie and a query parameter send a request to the
// canary at 0%, and another sends it back to the stable tag at 100%.
func TestCanaryOverrides(t *testing.T) {
	t.Parallel()
	const host = "overrides.canary.example.com"
	p, _ := canaryProxy(t, conf{}, host)
	d := p.putDomain(t, host, map[string]any{
		"canary": map[string]any{"tag": "b", "percent": 0},
		"overrides": []map[string]string{
			{"header": "X-Canary", "value": "1", "tag": "b"},
			{"cookie": "beta", "value": "yes", "tag": "b"},
			{"query": "canary", "value": "1", "tag": "b"},
			{"query": "canary", "value": "0", "tag": "a"},
		},
	})
	if len(d.Overrides) != 4 || d.Canary == nil || d.Canary.Percent != 0 {
		t.Fatalf("PUT: the answer shows canary %+v, overrides %v", d.Canary, d.Overrides)
	}
	tests := []struct {
		name    string
		percent float64
		path    string
		lines   []string
		want    string
	}{
		{"no override at 0%", 0, "/", nil, "a"},
		{"header at 0%", 0, "/", []string{"X-Canary: 1"}, "b"},
		{"header, other value", 0, "/", []string{"X-Canary: 2"}, "a"},
		{"cookie at 0%", 0, "/", []string{"Cookie: theme=dark; beta=yes"}, "b"},
		{"query at 0%", 0, "/page?x=1&canary=1", nil, "b"},
		{"no override at 100%", 100, "/", nil, "b"},
		{"query back to stable at 100%", 100, "/page?canary=0", nil, "a"},
		{"first override wins", 100, "/page?canary=0", []string{"X-Canary: 1"}, "b"},
	}
	for _, tt := range tests {
		p.setCanary(t, host, tt.percent)
		for i := range 5 { // not by chance: every time
			pl, err := p.place(host, tt.path, tt.lines...)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if pl.tag != tt.want {
				t.Errorf("%s: request %d served by %s, want tag %s", tt.name, i, pl.id, tt.want)
				break
			}
		}
	}
}

// explainAnswer is the explain endpoint's answer.
type explainAnswer struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
	Bucket *int   `json:"bucket"`
}

// TestCanaryExplainMatchesDataPath: for the same inputs, explain names
// the tag that then serves the request, for overrides and for each key.
func TestCanaryExplainMatchesDataPath(t *testing.T) {
	t.Parallel()
	const byHeader, byCookie, byIP = "header.explain.example.com", "cookie.explain.example.com", "ip.explain.example.com"
	p, _ := canaryProxy(t, conf{}, byHeader, byCookie, byIP)
	overrides := []map[string]string{
		{"header": "X-Canary", "value": "1", "tag": "b"},
		{"cookie": "beta", "value": "yes", "tag": "b"},
		{"query": "canary", "value": "0", "tag": "a"},
	}
	for host, by := range map[string]string{byHeader: "header:X-User-Id", byCookie: "cookie", byIP: "ip"} {
		p.putDomain(t, host, map[string]any{"canary": map[string]any{"tag": "b", "percent": 30},
			"sticky": map[string]any{"by": by}, "overrides": overrides})
	}
	type input struct {
		host    string
		query   string
		headers map[string]string
		cookies map[string]string
	}
	var inputs []input
	for i := range 60 {
		inputs = append(inputs,
			input{host: byHeader, headers: map[string]string{"X-User-Id": "u" + strconv.Itoa(i)}},
			input{host: byCookie, cookies: map[string]string{"fronttier_bucket": strconv.Itoa(i * 157 % 10000)}})
	}
	inputs = append(inputs,
		input{host: byHeader, headers: map[string]string{"X-Canary": "1", "X-User-Id": "u1"}},
		input{host: byCookie, cookies: map[string]string{"beta": "yes", "fronttier_bucket": "9999"}},
		input{host: byCookie, query: "canary=0", cookies: map[string]string{"fronttier_bucket": "0"}},
		input{host: byIP},
		input{host: byIP, headers: map[string]string{"X-Canary": "1"}},
	)
	sawTag := map[string]bool{}
	for _, in := range inputs {
		body := map[string]any{"query": in.query}
		if in.headers != nil {
			body["headers"] = in.headers
		}
		if in.cookies != nil {
			body["cookies"] = in.cookies
		}
		if in.host == byIP {
			body["client_ip"] = "127.0.0.1" // the address the test's requests come from
		}
		var ex explainAnswer
		p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/"+in.host+"/explain", body, &ex)
		var lines []string
		for k, v := range in.headers {
			lines = append(lines, k+": "+v)
		}
		var pairs []string
		for k, v := range in.cookies {
			pairs = append(pairs, k+"="+v)
		}
		if len(pairs) > 0 {
			lines = append(lines, "Cookie: "+strings.Join(pairs, "; "))
		}
		path := "/"
		if in.query != "" {
			path += "?" + in.query
		}
		pl, err := p.place(in.host, path, lines...)
		if err != nil {
			t.Fatal(err)
		}
		if pl.tag != ex.Tag {
			t.Errorf("%s %+v: explain says %s (%s), but %s served", in.host, in, ex.Tag, ex.Reason, pl.id)
		}
		sawTag[ex.Tag] = true
	}
	if !sawTag["a"] || !sawTag["b"] {
		t.Errorf("explain named only %v: the inputs should reach both tags", sawTag)
	}
	var ex explainAnswer
	p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/"+byHeader+"/explain", map[string]any{"headers": map[string]string{"X-Canary": "1"}}, &ex)
	if ex.Tag != "b" || ex.Reason != "override header X-Canary=1" {
		t.Errorf("explain of an override = %+v", ex)
	}
	p.mustAPI(t, http.StatusBadRequest, http.MethodPost, "/domains/"+byHeader+"/explain", `{"headers": {"X-Canary": "1"}, "bogus": 1}`, nil)
}

// TestCanaryBackendAffinity is FAQ Q3: with sticky.backend a client stays
// on one backend of its tag while that backend is healthy; when it is
// not, the client moves and its cookie is replaced.
func TestCanaryBackendAffinity(t *testing.T) {
	t.Parallel()
	const host = "affinity.canary.example.com"
	p, bs := canaryProxy(t, conf{}, host)
	p.putDomain(t, host, map[string]any{"sticky": map[string]any{"backend": true}})

	first, err := p.place(host, "/")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.cookies) != 1 || !strings.HasPrefix(first.cookies[0], "fronttier_backend=") {
		t.Fatalf("a new client was sent %q, want one fronttier_backend cookie", first.cookies)
	}
	cookie := strings.SplitN(first.cookies[0], ";", 2)[0]
	for i := range 20 {
		pl, err := p.place(host, "/", "Cookie: "+cookie)
		if err != nil {
			t.Fatal(err)
		}
		if pl.id != first.id || len(pl.cookies) != 0 {
			t.Fatalf("request %d with %s: served by %s with %q; want %s and no cookie", i, cookie, pl.id, pl.cookies, first.id)
		}
	}
	other := map[string]string{"a1": "a2", "a2": "a1"}[first.id]
	if pl, err := p.place(host, "/"); err != nil || pl.id != other {
		t.Errorf("the next new client went to %s (%v), want %s: new clients are still balanced", pl.id, err, other)
	}

	bs[first.id].kill()
	eventually(t, waitTimeout, func() bool {
		var b backendObj
		return p.api(t, http.MethodGet, "/backends/"+first.id, nil, &b) == http.StatusOK && b.Health == "unhealthy"
	}, first.id+" marked unhealthy")
	moved, err := p.place(host, "/", "Cookie: "+cookie)
	if err != nil {
		t.Fatal(err)
	}
	if moved.id != other || len(moved.cookies) != 1 || !strings.HasPrefix(moved.cookies[0], "fronttier_backend=") {
		t.Fatalf("after %s went down: served by %s with %q; want %s and a new cookie", first.id, moved.id, moved.cookies, other)
	}
	newCookie := strings.SplitN(moved.cookies[0], ";", 2)[0]
	if newCookie == cookie {
		t.Fatalf("the cookie was not replaced: %s", newCookie)
	}
	for range 10 {
		if pl, err := p.place(host, "/", "Cookie: "+newCookie); err != nil || pl.id != other || len(pl.cookies) != 0 {
			t.Fatalf("with the new cookie: %+v, %v; want %s and no cookie", pl, err, other)
		}
	}
}

// TestCanaryChangesUnderLoad: while clients keep sending requests, the
// canary is created, moved through several shares, cleared, and ended by
// a switch, without one failed request; both tags serve meanwhile.
func TestCanaryChangesUnderLoad(t *testing.T) {
	t.Parallel()
	const host = "load.canary.example.com"
	p, _ := canaryProxy(t, conf{Metrics: true}, host)
	l := startLoad(t, p, host, 4)
	l.more(t, 100, "load before the canary")
	for _, percent := range []float64{1, 5, 10, 25, 50, 100, 50, 0.5} {
		p.setCanary(t, host, percent)
		l.more(t, 100, fmt.Sprintf("load at %v%%", percent))
	}
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodDelete, "/domains/"+host+"/canary", nil, &d)
	if d.Canary != nil || d.EnabledBackendsTag != "a" {
		t.Fatalf("DELETE canary: the answer shows tag %s, canary %+v", d.EnabledBackendsTag, d.Canary)
	}
	l.more(t, 100, "load after the canary was cleared")
	p.setCanary(t, host, 20)
	l.more(t, 100, "load at 20% again")
	sw := p.switchTag(t, host, "b")
	l.more(t, 100, "load after the switch")
	l.finish()
	if n := l.failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed; first: %s", n, l.total.Load(), l.firstErr)
	}
	if l.servedBy("a1")+l.servedBy("a2") == 0 || l.servedBy("b1")+l.servedBy("b2") == 0 {
		t.Errorf("served %v: both tags should have served", l.served)
	}
	t.Logf("%d requests, zero failures; served %v", l.total.Load(), l.served)
	var after canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/"+host, nil, &after)
	if sw.EnabledBackendsTag != "b" || after.Canary != nil {
		t.Errorf("after the switch: tag %s, canary %+v; want b and no canary", after.EnabledBackendsTag, after.Canary)
	}
}

// TestCanaryMetricsAndPersistence: requests are counted by the tag that
// served them, proxy_canary_percent shows the share, and a canary set
// over the API is in the file and in force again after a restart.
func TestCanaryMetricsAndPersistence(t *testing.T) {
	t.Parallel()
	const host = "metrics.canary.example.com"
	p, _ := canaryProxy(t, conf{Metrics: true}, host)
	p.putDomain(t, host, map[string]any{
		"canary":    map[string]any{"tag": "b", "percent": 12.5},
		"sticky":    map[string]any{"by": "header:X-User-Id"},
		"overrides": []map[string]string{{"header": "X-Canary", "value": "1", "tag": "b"}},
	})
	for i := range 200 {
		if _, err := p.place(host, "/", "X-User-Id: m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	samples := p.metricSamples(t)
	byTag := map[string]float64{}
	for _, s := range samples {
		if s.name == "proxy_requests_total" && s.labels["domain"] == host {
			byTag[s.labels["tag"]] += s.value
		}
	}
	if byTag["a"] == 0 || byTag["b"] == 0 || byTag["a"]+byTag["b"] != 200 {
		t.Errorf("proxy_requests_total by tag = %v, want 200 requests over tags a and b", byTag)
	}
	if got := gauge(samples, "proxy_canary_percent", host); got != 12.5 {
		t.Errorf("proxy_canary_percent = %v, want 12.5", got)
	}
	found := false
	for _, s := range samples {
		if s.name == "proxy_request_duration_ms_count" && s.labels["domain"] == host && s.labels["tag"] == "b" {
			found = true
		}
	}
	if !found {
		t.Error("no proxy_request_duration_ms series for tag b")
	}

	file := string(readFile(t, p.Config))
	for _, want := range []string{"[virtual_hosts.canary]", "percent = 12.5", "[virtual_hosts.sticky]", "[[virtual_hosts.overrides]]"} {
		if !strings.Contains(file, want) {
			t.Errorf("the file lacks %q:\n%s", want, file)
		}
	}
	requireValid(t, p.Config)
	p.kill()
	p = p.restart(t)
	var d canaryDomain
	p.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/"+host, nil, &d)
	if d.Canary == nil || d.Canary.Percent != 12.5 || d.Sticky == nil || len(d.Overrides) != 1 {
		t.Fatalf("after a restart: %+v", d)
	}
	if pl, err := p.place(host, "/", "X-Canary: 1"); err != nil || pl.tag != "b" {
		t.Errorf("after a restart the override sent the request to %+v (%v), want tag b", pl, err)
	}
	p.mustAPI(t, http.StatusOK, http.MethodDelete, "/domains/"+host+"/canary", nil, nil)
	if got := gauge(p.metricSamples(t), "proxy_canary_percent", host); got != 0 {
		t.Errorf("proxy_canary_percent after DELETE = %v, want 0", got)
	}
}

// metricSamples scrapes the proxy's metrics from the management API.
func (p *proxyProc) metricSamples(t *testing.T) []sample {
	t.Helper()
	status, body, err := p.tryAPI(http.MethodGet, "/metrics", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", status, err)
	}
	return parseMetrics(t, string(body))
}

// gauge returns the value of name{domain}, or -1 when there is none.
func gauge(samples []sample, name, domain string) float64 {
	for _, s := range samples {
		if s.name == name && s.labels["domain"] == domain {
			return s.value
		}
	}
	return -1
}
