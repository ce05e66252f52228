package e2e

import (
	"net/http"
	"testing"
)

// TestHealthChecks registers a backend whose /health fails: the API reports
// it unhealthy, it gets no traffic, and switching to a tag whose backends
// are all unhealthy is refused unless forced.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	good := startBackend(t, "good1")
	sick := startBackend(t, "sick1", "-health-status", "500")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"hc.example.com", "h"}},
		Backends: []backendConf{be("good1", good, "h"), be("sick1", sick, "h", "s")},
	})

	// interval_secs = 1: the failing checks show within a few seconds.
	eventually(t, waitTimeout, func() bool {
		var b backendObj
		return p.api(t, http.MethodGet, "/backends/sick1", nil, &b) == http.StatusOK && b.Healthy != nil && !*b.Healthy
	}, "backend sick1, whose /health answers 500, is reported unhealthy")
	eventually(t, waitTimeout, func() bool {
		var b backendObj
		return p.api(t, http.MethodGet, "/backends/good1", nil, &b) == http.StatusOK && b.Healthy != nil && *b.Healthy
	}, "backend good1 is reported healthy")

	for i := range 6 {
		if id := p.backendOf(t, "hc.example.com"); id != "good1" {
			t.Fatalf("request %d went to %q; an unhealthy backend must get no traffic", i, id)
		}
	}

	// Tag "s" has only the unhealthy backend.
	status, body, err := p.tryAPI(http.MethodPost, "/domains/hc.example.com/switch", `{"new_tag": "s"}`)
	if err != nil || status != http.StatusConflict {
		t.Fatalf("switch to a tag whose backends are all unhealthy: %d %s %v, want 409", status, body, err)
	}
	p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/hc.example.com/switch", `{"new_tag": "s", "force": true}`, nil)
}
