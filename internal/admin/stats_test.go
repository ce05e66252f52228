package admin

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/clock/clocktest"
	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/rollout"
)

// trafficStats returns metrics with traffic on example.com: 100 requests
// to tag a (2 of them 5xx, durations 1 to 100 ms), 10 to tag b and one
// redirect routed to no tag. api.example.com has none.
func trafficStats() *metrics.Metrics {
	m := metrics.New(prometheus.NewRegistry())
	for i := 1; i <= 100; i++ {
		code := http.StatusOK
		if i%50 == 0 {
			code = http.StatusBadGateway
		}
		m.Request("example.com", "a", "web-v1", code, false, time.Duration(i)*time.Millisecond)
	}
	for range 10 {
		m.Request("example.com", "b", "web-v2", http.StatusOK, false, 5*time.Millisecond)
	}
	m.Request("example.com", "", "", http.StatusPermanentRedirect, false, 0)
	return m
}

// TestStatsEndpoint checks GET /api/v1/stats against a golden answer:
// every domain's counts per tag, and the rollout of the domain that has
// one.
func TestStatsEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, Options{Stats: trafficStats()})
	ro := rollout.New(rollout.Options{Store: e.store, Stats: fakeStats{}, Clock: clocktest.New(lastCheck)})
	if _, err := ro.Start("api.example.com", config.Rollout{ToTag: "a", Steps: []float64{10, 50, 100}, StepSecs: 60, MaxErrorRate: 0.01}); err != nil {
		t.Fatal(err)
	}

	got := e.get(t, "/api/v1/stats")
	if got.code != http.StatusOK {
		t.Fatalf("GET /api/v1/stats: %d %s", got.code, got.body)
	}
	checkGolden(t, "stats.json", got.body)

	var s struct {
		Domains map[string]map[string]struct {
			Requests, Errors uint64
			P99Ms            float64 `json:"p99_ms"`
		}
		Rollouts map[string]struct {
			State   string
			Percent float64
		}
	}
	if err := json.Unmarshal(got.body, &s); err != nil {
		t.Fatal(err)
	}
	a := s.Domains["example.com"]["a"]
	if a.Requests != 100 || a.Errors != 2 || a.P99Ms < 75 || a.P99Ms > 125 {
		t.Errorf("example.com tag a = %+v, want 100 requests, 2 errors, p99 about 99 ms", a)
	}
	if n := len(s.Domains["example.com"]); n != 3 {
		t.Errorf("example.com has %d tags, want a, b and \"\"", n)
	}
	if tags, ok := s.Domains["api.example.com"]; !ok || len(tags) != 0 {
		t.Errorf("api.example.com, without traffic: %v (present %v), want an empty object", tags, ok)
	}
	if r := s.Rollouts["api.example.com"]; r.State != config.RolloutRunning || r.Percent != 10 || len(s.Rollouts) != 1 {
		t.Errorf("rollouts = %+v, want api.example.com's, running at 10%%", s.Rollouts)
	}

	if got := newEnv(t).get(t, "/api/v1/stats"); got.code != http.StatusNotFound {
		t.Errorf("GET /api/v1/stats without Stats: %d, want 404", got.code)
	}
}
