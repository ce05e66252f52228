package health

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, http.StatusOK, "")
	c, reg, rec := newChecker(t, Options{Interval: slow, UnhealthyThreshold: 2})
	b := &backend.Backend{ID: "b1", Addr: ts.addr()}
	c.Added(b)

	// Before any check: every series but the duration histogram exists,
	// the unknown backend counts as healthy.
	if got := testutil.ToFloat64(c.m.healthy.WithLabelValues("b1", b.Addr)); got != 1 {
		t.Errorf("backend_healthy before a check = %v, want 1", got)
	}
	for name, want := range map[string]int{
		"backend_healthy": 1, "health_check_total": 2, "health_check_duration_seconds": 0,
		"backend_ejections_total": 2, "backend_passive_failures_total": 1,
		"backend_ejection_hold_seconds": 1,
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}

	run(t, c)
	rec.next(t, b)
	ts.status.Store(http.StatusBadGateway)
	c.kick(b)
	rec.next(t, b)
	c.kick(b)
	if e := rec.next(t, b); e.health != backend.Unhealthy {
		t.Fatalf("after two failures: %v", e.health)
	}

	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{name: "backend_healthy", c: c.m.healthy.WithLabelValues("b1", b.Addr), want: 0},
		{name: "health_check_total pass", c: c.m.checks.WithLabelValues("b1", "pass"), want: 1},
		{name: "health_check_total fail", c: c.m.checks.WithLabelValues("b1", "fail"), want: 2},
		{name: "backend_ejections_total active", c: c.m.ejections.WithLabelValues("b1", reasonActive), want: 1},
		{name: "backend_ejections_total passive", c: c.m.ejections.WithLabelValues("b1", reasonPassive), want: 0},
	}
	for _, ch := range checks {
		if got := testutil.ToFloat64(ch.c); got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, got, ch.want)
		}
	}
	want := `
# HELP backend_healthy Whether the backend gets traffic: 1 healthy or not yet checked, 0 unhealthy.
# TYPE backend_healthy gauge
backend_healthy{address="` + b.Addr + `",backend="b1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "backend_healthy"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP health_check_total Active health checks, by backend and result (pass or fail).
# TYPE health_check_total counter
health_check_total{backend="b1",result="fail"} 2
health_check_total{backend="b1",result="pass"} 1
`), "health_check_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "health_check_duration_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 3 {
				t.Errorf("health_check_duration_seconds count = %d, want 3", n)
			}
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint problems: %v %v", problems, err)
	}
	for _, col := range []prometheus.Collector{c.m.healthy, c.m.checks, c.m.duration, c.m.ejections, c.m.passive, c.m.hold} {
		if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
			t.Errorf("lint problems: %v %v", problems, err)
		}
	}
}

// Two checkers on one registry share the collectors instead of panicking;
// a nil Registerer is allowed.
func TestMetricsRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := New(Options{Registerer: reg})
	b := New(Options{Registerer: reg})
	if a.m.checks != b.m.checks {
		t.Error("second checker did not reuse the registered collectors")
	}
	c := New(Options{})
	c.Added(&backend.Backend{ID: "b1", Addr: "127.0.0.1:1"})
	if got := testutil.CollectAndCount(c.m.healthy); got != 1 {
		t.Errorf("unregistered metrics: %d series", got)
	}
}
