package health

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/backend"
)

// Ejection reasons, the values of backend_ejections_total's reason label.
const (
	reasonActive  = "active"
	reasonPassive = "passive"
)

// metrics holds the checker's collectors. They exist even when no
// Registerer was given (then nothing exports them), so callers never check
// for nil.
type metrics struct {
	healthy   *prometheus.GaugeVec
	checks    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	ejections *prometheus.CounterVec
	passive   *prometheus.CounterVec
	hold      *prometheus.GaugeVec
}

// newMetrics builds the collectors and registers them on reg, if not nil.
// Collectors already registered (a second Checker on the same registry) are
// reused; any other registration problem is logged and leaves that metric
// unexported.
func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backend_healthy",
			Help: "Whether the backend gets traffic: 1 healthy or not yet checked, 0 unhealthy.",
		}, []string{"backend", "address"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "health_check_total",
			Help: "Active health checks, by backend and result (pass or fail).",
		}, []string{"backend", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "health_check_duration_seconds",
			Help:    "Duration of active health checks in seconds, by backend.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"backend"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backend_ejections_total",
			Help: "Transitions of a backend to unhealthy, by backend and reason (active checks or passive failures).",
		}, []string{"backend", "reason"}),
		passive: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backend_passive_failures_total",
			Help: "Forwarding failures on real traffic reported to passive health checking, by backend.",
		}, []string{"backend"}),
		hold: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backend_ejection_hold_seconds",
			Help: "Length in seconds of the hold of the backend's current ejection, the least time it stays out of rotation " +
				"(the base doubled for each ejection in a row, up to the maximum); 0 when it is not held.",
		}, []string{"backend"}),
	}
	if reg == nil {
		return m
	}
	m.healthy = register(reg, log, m.healthy)
	m.checks = register(reg, log, m.checks)
	m.duration = register(reg, log, m.duration)
	m.ejections = register(reg, log, m.ejections)
	m.passive = register(reg, log, m.passive)
	m.hold = register(reg, log, m.hold)
	return m
}

// register registers c on reg and returns it, or the equal collector
// already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Error("register health metric", "error", err)
	return c
}

// series is one backend's children of the metric vectors, looked up once so
// that recording a check is a few atomic adds. The probe's mutex guards it.
type series struct {
	m                    *metrics
	id, addr             string
	healthy              prometheus.Gauge
	pass, fail           prometheus.Counter
	duration             prometheus.Observer // nil until the first check
	ejectActive, ejectPv prometheus.Counter
	passive              prometheus.Counter
	hold                 prometheus.Gauge
}

// series creates b's gauge and counters, all at zero, so that they are
// exported (and rate() and increase() see the first event) from the start.
// The duration histogram, the largest series, appears with the first
// check: a histogram's zero buckets tell nothing.
func (m *metrics) series(b *backend.Backend) series {
	id := b.ID
	return series{
		m:           m,
		id:          id,
		addr:        b.Addr,
		healthy:     m.healthy.WithLabelValues(id, b.Addr),
		pass:        m.checks.WithLabelValues(id, "pass"),
		fail:        m.checks.WithLabelValues(id, "fail"),
		ejectActive: m.ejections.WithLabelValues(id, reasonActive),
		ejectPv:     m.ejections.WithLabelValues(id, reasonPassive),
		passive:     m.passive.WithLabelValues(id),
		hold:        m.hold.WithLabelValues(id),
	}
}

// setHealthy sets backend_healthy from h; Unknown counts as healthy.
func (s *series) setHealthy(h backend.Health) {
	v := 1.0
	if h == backend.Unhealthy {
		v = 0
	}
	s.healthy.Set(v)
}

// check counts one active check.
func (s *series) check(pass bool, d time.Duration) {
	if pass {
		s.pass.Inc()
	} else {
		s.fail.Inc()
	}
	if s.duration == nil {
		s.duration = s.m.duration.WithLabelValues(s.id)
	}
	s.duration.Observe(d.Seconds())
}

// eject counts one transition to unhealthy.
func (s *series) eject(reason string) {
	if reason == reasonPassive {
		s.ejectPv.Inc()
	} else {
		s.ejectActive.Inc()
	}
}

// setHold sets backend_ejection_hold_seconds; 0 when not held.
func (s *series) setHold(d time.Duration) { s.hold.Set(d.Seconds()) }

// delete removes the backend's series from the vectors. The caller makes
// sure nothing writes to them afterwards (probe.removed).
func (s *series) delete() {
	m := s.m
	m.healthy.DeleteLabelValues(s.id, s.addr)
	m.checks.DeleteLabelValues(s.id, "pass")
	m.checks.DeleteLabelValues(s.id, "fail")
	m.duration.DeleteLabelValues(s.id)
	m.ejections.DeleteLabelValues(s.id, reasonActive)
	m.ejections.DeleteLabelValues(s.id, reasonPassive)
	m.passive.DeleteLabelValues(s.id)
	m.hold.DeleteLabelValues(s.id)
}
