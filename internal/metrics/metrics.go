// Package metrics defines fronttier's Prometheus metrics on an injected
// registry and the small adapters the data path reports through. Names are
// the manual's (proxy_requests_total, proxy_request_duration_ms,
// proxy_active_connections, certificate_days_until_expiration, ...).
package metrics

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fronttier/internal/backend"
)

// UnknownDomain labels requests whose Host matched no virtual host, so that
// random Host headers cannot create label values.
const UnknownDomain = "_unknown"

// Metrics holds the proxy's collectors. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	connections prometheus.Gauge
	retries     *prometheus.CounterVec
	panics      *prometheus.CounterVec
	upstream    *prometheus.HistogramVec
	h2calm      *prometheus.CounterVec

	// series caches the children of requests and duration per label set:
	// after the first request of a kind, reporting is a lock-free
	// sync.Map load and a few atomic adds.
	series sync.Map // seriesKey -> *series
	// stats holds each domain's per-tag counts (see Stats).
	stats sync.Map // domain -> *domainStats

	// mu guards forwarders and the creation of upstream children, so that
	// a removed backend's series is not created again (see Upstream).
	mu sync.Mutex
	// forwarders counts, by backend id, the observers handed out by
	// Upstream whose backend has not been removed yet: backend.Registry
	// builds one forwarder per backend and reports its removal once.
	// During an address change the id has two, the old backend's and the
	// new one's.
	forwarders map[string]int
}

type seriesKey struct {
	domain, tag, backend string
	code                 int
	failed               bool // the error label
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
	stats    *tagCounters // the domain's and tag's
}

// DurationBuckets are proxy_request_duration_ms's bucket bounds, in ms.
var DurationBuckets = []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

// New registers the proxy's metrics, plus the Go runtime's and the
// process's, on reg.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg:        reg,
		forwarders: make(map[string]int),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_requests_total",
			Help: "Total number of requests, by virtual host, tag routed to, backend, status code and whether it failed (a 5xx answer, or an answer cut short or failed after its head was sent).",
		}, []string{"domain", "tag", "backend", "code", "error"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "proxy_request_duration_ms",
			Help:    "Request duration in milliseconds, from the request's arrival to the end of its response, by virtual host and tag routed to.",
			Buckets: DurationBuckets,
		}, []string{"domain", "tag"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "proxy_active_connections",
			Help: "Client connections currently open on the proxy's listeners.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_retries_total",
			Help: "Attempts sent again to another backend after the named backend failed before answering.",
		}, []string{"domain", "backend"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_panic_requests_total",
			Help: "Requests sent to an unhealthy backend because no backend of the domain's tag was healthy (panic mode).",
		}, []string{"domain"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "proxy_upstream_duration_ms",
			Help:    "Time from sending a request to a backend to receiving its response head, in milliseconds.",
			Buckets: DurationBuckets,
		}, []string{"backend"}),
		h2calm: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_http2_attack_closes_total",
			Help: "HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM for spending a budget of the frame guard, by attack (rapid_reset, made_you_reset, ping_flood, settings_flood, window_update_flood, continuation_flood, hpack_bomb).",
		}, []string{"attack"}),
	}
	reg.MustRegister(m.requests, m.duration, m.connections, m.retries, m.panics, m.upstream, m.h2calm,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics are registered on, for other
// components to add theirs.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request records one finished request (proxy.Observer): tag is the tag
// the request was routed to ("" when it was not: an unknown host, a
// redirect). Its error label is true for a server error (5xx) and for an
// answer that failed or was cut short after its head was sent (failed),
// whatever its status: the manual's error-rate query then sees broken
// answers too, and so does the domain's and tag's Stats. After the first
// request of a label set it takes no lock and allocates nothing.
func (m *Metrics) Request(domain, tag, backend string, code int, failed bool, d time.Duration) {
	if domain == "" {
		domain = UnknownDomain
	}
	k := seriesKey{domain, tag, backend, code, failed || code >= 500}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(domain, tag, backend, strconv.Itoa(code), strconv.FormatBool(k.failed)),
			duration: m.duration.WithLabelValues(domain, tag),
			stats:    m.counters(domain, tag),
		})
	}
	s := v.(*series)
	s.requests.Inc()
	ms := float64(d.Microseconds()) / 1000
	s.duration.Observe(ms)
	s.stats.add(k.failed, ms)
}

// Retry counts an attempt sent again after backend failed (proxy.Observer).
func (m *Metrics) Retry(domain, backend string) { m.retries.WithLabelValues(domain, backend).Inc() }

// HTTP2AttackClosed counts an HTTP/2 connection the frame guard closed
// for attack (h2guard.Limits.OnCalm).
func (m *Metrics) HTTP2AttackClosed(attack string) { m.h2calm.WithLabelValues(attack).Inc() }

// Panic counts a request routed in panic mode (proxy.Observer).
func (m *Metrics) Panic(domain string) { m.panics.WithLabelValues(domain).Inc() }

// Upstream returns the observer of backend id's response times, in
// milliseconds (proxy.UpstreamOptions.Latency); resolve it once per
// backend. The backend's proxy_upstream_duration_ms series is created by
// the first observation, not here: a backend that gets no traffic costs no
// histogram. After that first call Observe is one atomic load and the
// histogram's own atomic adds, without locks or allocations.
func (m *Metrics) Upstream(id string) prometheus.Observer {
	m.mu.Lock()
	m.forwarders[id]++
	m.mu.Unlock()
	return &upstream{m: m, id: id}
}

// Added implements backend.Watcher; series appear with the first request.
func (m *Metrics) Added(*backend.Backend) {}

// Removed implements backend.Watcher: a removed backend's series go.
func (m *Metrics) Removed(b *backend.Backend) {
	m.mu.Lock()
	if n := m.forwarders[b.ID]; n > 1 {
		m.forwarders[b.ID] = n - 1
	} else {
		delete(m.forwarders, b.ID)
	}
	m.upstream.DeleteLabelValues(b.ID)
	m.mu.Unlock()
	m.requests.DeletePartialMatch(prometheus.Labels{"backend": b.ID})
	m.retries.DeletePartialMatch(prometheus.Labels{"backend": b.ID})
	m.series.Range(func(k, _ any) bool {
		if k.(seriesKey).backend == b.ID {
			m.series.Delete(k)
		}
		return true
	})
}

// upstream is the observer Upstream hands out: it finds or creates the
// backend's histogram at the first observation and keeps it.
type upstream struct {
	m  *Metrics
	id string
	h  atomic.Pointer[prometheus.Observer] // nil until the first observation
}

// Observe records one response time, in milliseconds.
func (u *upstream) Observe(v float64) {
	if h := u.h.Load(); h != nil {
		(*h).Observe(v)
		return
	}
	u.first().Observe(v)
}

// first resolves u's histogram. A backend removed before its first
// observation (a request that was still in flight) gets none: its series
// would outlive it. Requests finishing on a replaced backend (same id, new
// address) count towards the id's series, which is the new backend's too.
func (u *upstream) first() prometheus.Observer {
	m := u.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := u.h.Load(); h != nil {
		return *h
	}
	var h prometheus.Observer = discard{}
	if m.forwarders[u.id] > 0 {
		h = m.upstream.WithLabelValues(u.id)
	}
	u.h.Store(&h)
	return h
}

// discard is the observer of a backend already removed.
type discard struct{}

func (discard) Observe(float64) {}

// Forget drops the series of a domain that no longer exists, so deleted
// domains do not linger in the output.
func (m *Metrics) Forget(domain string) {
	m.series.Range(func(k, _ any) bool {
		if k.(seriesKey).domain == domain {
			m.series.Delete(k)
		}
		return true
	})
	m.stats.Delete(domain)
	m.requests.DeletePartialMatch(prometheus.Labels{"domain": domain})
	m.duration.DeletePartialMatch(prometheus.Labels{"domain": domain})
	m.retries.DeletePartialMatch(prometheus.Labels{"domain": domain})
	m.panics.DeleteLabelValues(domain)
}

// ConnState counts open client connections, upgraded ones (WebSockets)
// included until they close; install it as the data-path server's
// (internal/server's) ConnState hook. It counts StateNew up and
// StateClosed down and ignores StateHijacked: that server reports a
// hijacked connection's StateClosed when the handler closes it.
// net/http's server never does, so on it hijacked connections would stay
// counted.
func (m *Metrics) ConnState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		m.connections.Inc()
	case http.StateClosed:
		m.connections.Dec()
	}
}
