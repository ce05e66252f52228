package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
)

func TestRequestSeries(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	m.Request("example.com", "web-1", 200, 3*time.Millisecond)
	m.Request("example.com", "web-1", 200, 5*time.Millisecond)
	m.Request("example.com", "web-1", 502, time.Millisecond)
	m.Request("", "", 404, time.Millisecond)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"example.com", "web-1", "200", "false"}, 2},
		{[]string{"example.com", "web-1", "502", "true"}, 1}, // the manual's error-rate query
		{[]string{UnknownDomain, "", "404", "false"}, 1},     // random Host headers share one series
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.labels...)); got != tc.want {
			t.Errorf("proxy_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration, "proxy_request_duration_ms"); n != 2 {
		t.Errorf("%d duration series, want one per domain (2)", n)
	}
}

func TestForgetAndRemoved(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	m.Request("gone.example.com", "b1", 200, time.Millisecond)
	m.Request("kept.example.com", "b2", 200, time.Millisecond)
	m.Upstream("b2").Observe(1)
	m.Forget("gone.example.com")
	m.Removed(&backend.Backend{ID: "b2"})
	if n := testutil.CollectAndCount(m.requests); n != 0 {
		t.Errorf("%d request series left after forgetting the domain and removing the backend", n)
	}
	if n := testutil.CollectAndCount(m.upstream); n != 0 {
		t.Errorf("%d upstream series left for a removed backend", n)
	}
	// A series forgotten is recreated by the next request, from zero.
	m.Request("gone.example.com", "b1", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("gone.example.com", "b1", "200", "false")); got != 1 {
		t.Errorf("recreated series = %v, want 1", got)
	}
}

// TestLint: the output passes promtool's checks but for the one name the
// manual fixes (proxy_request_duration_ms, with its abbreviated unit).
func TestLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Request("example.com", "b", 200, time.Millisecond)
	m.Retry("example.com", "b")
	m.Panic("example.com")
	m.Upstream("b").Observe(1)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasSuffix(p.Metric, "_ms") && strings.Contains(p.Text, "abbreviated units") {
			continue // the manual's names; see README "Metrics"
		}
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("example.com", "web-1", 200, time.Millisecond)
		}
	})
}
