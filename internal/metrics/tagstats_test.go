package metrics

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/route"
)

func TestTagLabel(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	m.Request("example.com", "a", "web-1", 200, false, time.Millisecond)
	m.Request("example.com", "b", "web-2", 200, false, time.Millisecond)
	m.Request("example.com", "b", "web-2", 200, true, time.Millisecond) // cut short
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"example.com", "a", "web-1", "200", "false"}, 1},
		{[]string{"example.com", "b", "web-2", "200", "false"}, 1},
		{[]string{"example.com", "b", "web-2", "200", "true"}, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.labels...)); got != tc.want {
			t.Errorf("proxy_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration, "proxy_request_duration_ms"); n != 2 {
		t.Errorf("%d duration series, want one per domain and tag (2)", n)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	if got := m.Stats("example.com"); len(got) != 0 {
		t.Fatalf("Stats before any request = %v", got)
	}
	for range 90 {
		m.Request("example.com", "a", "web-1", 200, false, 10*time.Millisecond)
	}
	for range 8 {
		m.Request("example.com", "b", "web-2", 200, false, 100*time.Millisecond)
	}
	m.Request("example.com", "b", "web-2", 503, false, 100*time.Millisecond)
	m.Request("example.com", "b", "web-3", 200, true, 2*time.Second)
	m.Request("other.example.com", "b", "web-2", 500, false, time.Millisecond)
	before := m.Stats("example.com")
	a, b := before["a"], before["b"]
	if a.Requests != 90 || a.Errors != 0 || b.Requests != 10 || b.Errors != 2 {
		t.Fatalf("stats a %d/%d, b %d/%d; want 90/0 and 10/2", a.Requests, a.Errors, b.Requests, b.Errors)
	}
	if b.ErrorRate() != 0.2 || a.ErrorRate() != 0 || (TagStats{}).ErrorRate() != 0 {
		t.Errorf("error rates %v, %v", b.ErrorRate(), a.ErrorRate())
	}
	if got := a.Quantile(0.99); got < 8 || got > 12.5 { // within its bucket: 25%
		t.Errorf("a's p99 = %v ms, want about 10", got)
	}
	if got := b.Quantile(0.5); got < 80 || got > 125 {
		t.Errorf("b's p50 = %v ms, want about 100", got)
	}
	if got := b.Quantile(0.99); got < 1600 || got > 2500 {
		t.Errorf("b's p99 = %v ms, want about 2000", got)
	}
	// The traffic of a step is the difference of two snapshots.
	m.Request("example.com", "b", "web-2", 502, false, 300*time.Millisecond)
	step := m.Stats("example.com")["b"].Sub(b)
	if step.Requests != 1 || step.Errors != 1 || step.Quantile(1) < 240 || step.Quantile(1) > 375 {
		t.Errorf("step = %d requests, %d errors, max %v ms; want 1, 1, about 300", step.Requests, step.Errors, step.Quantile(1))
	}
	m.Forget("example.com")
	if got := m.Stats("example.com"); len(got) != 0 {
		t.Errorf("Stats after Forget = %v", got)
	}
	if got := m.Stats("other.example.com")["b"]; got.Requests != 1 || got.Errors != 1 {
		t.Errorf("another domain's stats = %+v", got)
	}
}

func TestQuantileEdges(t *testing.T) {
	t.Parallel()
	if got := (TagStats{}).Quantile(0.99); got != 0 {
		t.Errorf("Quantile of nothing = %v", got)
	}
	over := TagStats{Latency: make([]uint64, latencyBuckets+1)}
	over.Latency[latencyBuckets] = 5
	if got := over.Quantile(0.5); got != latencyBounds[latencyBuckets-1] {
		t.Errorf("Quantile beyond every bound = %v, want the last bound", got)
	}
	if b := LatencyBounds(); len(b) != latencyBuckets || b[0] != 0.25 || b[len(b)-1] < 60000 {
		t.Errorf("bounds %v..%v (%d), want 0.25 ms to past a minute", b[0], b[len(b)-1], len(b))
	}
}

// TestStatsConcurrent: counts are exact under concurrent requests of new
// and old tags (-race).
func TestStatsConcurrent(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			tag := []string{"a", "b", "c"}[g%3]
			for range 500 {
				m.Request("example.com", tag, "web", 200, false, time.Millisecond)
				m.Stats("example.com")
			}
		})
	}
	wg.Wait()
	var total uint64
	for _, s := range m.Stats("example.com") {
		total += s.Requests
	}
	if total != 8*500 {
		t.Errorf("counted %d requests, want %d", total, 8*500)
	}
}

// Not parallel: AllocsPerRun.
func TestRequestDoesNotAllocate(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.Request("example.com", "b", "web-1", 200, false, time.Millisecond)
	if allocs := testing.AllocsPerRun(1000, func() { m.Request("example.com", "b", "web-1", 200, false, time.Millisecond) }); allocs != 0 {
		t.Errorf("Request allocates %v times after the first of its series, want 0", allocs)
	}
}

type fixedRoutes struct{ t *route.Table }

func (f fixedRoutes) Table() *route.Table { return f.t }

func TestCanaryGauge(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	pool, err := balance.NewPool("", []*backend.Backend{{ID: "b1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.WatchCanaries(fixedRoutes{route.Build([]*route.Host{
		{Domain: "plain.example.com", Tag: "a", Pool: pool},
		{Domain: "canary.example.com", Tag: "a", Pool: pool, Split: &route.Split{Canary: pool, CanaryTag: "b", Percent: 12.5, Threshold: 1250}},
		{Domain: "overrides.example.com", Tag: "a", Pool: pool, Split: &route.Split{}},
	})})
	want := `
# HELP proxy_canary_percent Share of the domain's requests sent to its canary tag, in percent (0 when it has no canary); overrides come on top.
# TYPE proxy_canary_percent gauge
proxy_canary_percent{domain="canary.example.com"} 12.5
proxy_canary_percent{domain="overrides.example.com"} 0
proxy_canary_percent{domain="plain.example.com"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "proxy_canary_percent"); err != nil {
		t.Error(err)
	}
}

func TestBucketOf(t *testing.T) {
	t.Parallel()
	for _, ms := range []float64{0, 0.1, 0.25, 0.26, 1, 9.99, 10, 100, 1234.5, 60000, 68000, 1e9} {
		if got, want := bucketOf(ms), sort.SearchFloat64s(latencyBounds[:], ms); got != want {
			t.Errorf("bucketOf(%v) = %d, want %d", ms, got, want)
		}
	}
}
