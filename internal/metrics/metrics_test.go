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
	m.Request("example.com", "a", "web-1", 200, false, 3*time.Millisecond)
	m.Request("example.com", "a", "web-1", 200, false, 5*time.Millisecond)
	m.Request("example.com", "a", "web-1", 502, false, time.Millisecond)
	m.Request("", "", "", 404, false, time.Millisecond)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"example.com", "a", "web-1", "200", "false"}, 2},
		{[]string{"example.com", "a", "web-1", "502", "true"}, 1}, // the manual's error-rate query
		{[]string{UnknownDomain, "", "", "404", "false"}, 1},      // random Host headers share one series
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
	m.Request("gone.example.com", "a", "b1", 200, false, time.Millisecond)
	m.Request("kept.example.com", "a", "b2", 200, false, time.Millisecond)
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
	m.Request("gone.example.com", "a", "b1", 200, false, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("gone.example.com", "a", "b1", "200", "false")); got != 1 {
		t.Errorf("recreated series = %v, want 1", got)
	}
}

// upstreamCount returns how many observations backend id's
// proxy_upstream_duration_ms series holds, or -1 when it does not exist.
func upstreamCount(t *testing.T, m *Metrics, id string) int {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "proxy_upstream_duration_ms" {
			continue
		}
		for _, s := range mf.GetMetric() {
			if s.GetLabel()[0].GetValue() == id {
				return int(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// A backend's upstream histogram appears with its first observation, not
// when its forwarder is built; after that, observing allocates nothing.
// Not parallel: AllocsPerRun.
func TestUpstreamCreatedOnFirstUse(t *testing.T) {
	m := New(prometheus.NewRegistry())
	o := m.Upstream("b1")
	if n := testutil.CollectAndCount(m.upstream); n != 0 {
		t.Fatalf("%d upstream series before any request, want 0", n)
	}
	o.Observe(3)
	if got := upstreamCount(t, m, "b1"); got != 1 {
		t.Fatalf("after the first observation: %d, want 1", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { o.Observe(2) }); allocs != 0 {
		t.Errorf("Observe allocates %v times, want 0", allocs)
	}
	if got := upstreamCount(t, m, "b1"); got != 102 { // AllocsPerRun adds a warm-up run
		t.Errorf("observations = %d, want 102", got)
	}
}

// Removal before the first observation, and an address change (the new
// backend's forwarder is built before the old backend is removed, as
// backend.Registry.Sync does).
func TestUpstreamRemoval(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())

	// A request still in flight to a removed backend creates no series.
	gone := m.Upstream("gone")
	m.Removed(&backend.Backend{ID: "gone"})
	gone.Observe(1)
	if got := upstreamCount(t, m, "gone"); got != -1 {
		t.Errorf("removed backend's series has %d observations, want no series", got)
	}

	// Address change of "b": the old backend's series goes, the new one
	// starts from zero at its first request.
	old := m.Upstream("b")
	old.Observe(1)
	next := m.Upstream("b")
	m.Removed(&backend.Backend{ID: "b"})
	if got := upstreamCount(t, m, "b"); got != -1 {
		t.Fatalf("series of the replaced backend kept (%d observations)", got)
	}
	old.Observe(1) // a request that was in flight: not exported
	next.Observe(2)
	next.Observe(2)
	if got := upstreamCount(t, m, "b"); got != 2 {
		t.Errorf("new backend's series has %d observations, want 2", got)
	}
	m.Removed(&backend.Backend{ID: "b"})
	next.Observe(2)
	if n := testutil.CollectAndCount(m.upstream); n != 0 {
		t.Errorf("%d upstream series after every backend left, want 0", n)
	}
	if len(m.forwarders) != 0 {
		t.Errorf("forwarders not forgotten: %v", m.forwarders)
	}
}

func BenchmarkUpstream(b *testing.B) {
	m := New(prometheus.NewRegistry())
	o := m.Upstream("b1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(1.5)
		}
	})
}

// TestLint: the output passes promtool's checks but for the one name the
// manual fixes (proxy_request_duration_ms, with its abbreviated unit).
func TestLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Request("example.com", "a", "b", 200, false, time.Millisecond)
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
			m.Request("example.com", "a", "web-1", 200, false, time.Millisecond)
		}
	})
}
