package certs

import (
	"log"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of tls_handshake_errors_total, a fixed set so that clients cannot
// create label values.
const (
	ReasonNoCertificate      = "no_certificate"
	ReasonUnsupportedVersion = "unsupported_version"
	ReasonNoCipherSuite      = "no_cipher_suite"
	ReasonBadCertificate     = "bad_certificate"
	ReasonNotTLS             = "not_tls"
	ReasonEOF                = "eof"
	ReasonTimeout            = "timeout"
	ReasonReset              = "reset"
	ReasonOther              = "other"
)

// metricSet holds the Manager's metrics. Its fields are set by
// newMetricSet and not modified afterwards.
type metricSet struct {
	expiry     *expiryCollector
	reloads    *prometheus.CounterVec
	handshakes map[string]prometheus.Counter // by reason
	handshakeV *prometheus.CounterVec
}

func newMetricSet(m *Manager) *metricSet {
	s := &metricSet{
		expiry: &expiryCollector{
			m: m,
			days: prometheus.NewDesc("certificate_days_until_expiration",
				"Days until the served certificate of the virtual host expires (fractional, negative once expired; the first to expire, when it serves several chains).",
				[]string{"domain"}, nil),
			expires: prometheus.NewDesc("certificate_expiration_timestamp_seconds",
				"Unix time at which the served certificate of the virtual host expires (the first to expire, when it serves several chains).",
				[]string{"domain"}, nil),
		},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certificate_reloads_total",
			Help: "Certificate loads and reloads (files that changed, forced reloads, certificates put by ACME), by result.",
		}, []string{"domain", "result"}),
		handshakeV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tls_handshake_errors_total",
			Help: "TLS handshakes on the HTTPS listener that failed, by reason.",
		}, []string{"reason"}),
		handshakes: make(map[string]prometheus.Counter),
	}
	// Every reason's series exists from the start, at zero.
	for _, r := range []string{
		ReasonNoCertificate, ReasonUnsupportedVersion, ReasonNoCipherSuite, ReasonBadCertificate,
		ReasonNotTLS, ReasonEOF, ReasonTimeout, ReasonReset, ReasonOther,
	} {
		s.handshakes[r] = s.handshakeV.WithLabelValues(r)
	}
	return s
}

func (s *metricSet) register(r prometheus.Registerer) {
	r.MustRegister(s.expiry, s.reloads, s.handshakeV)
}

// reload counts one load attempt of domain's certificate.
func (s *metricSet) reload(domain string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	s.reloads.WithLabelValues(domain, result).Inc()
}

// forget drops the series of a domain that is no longer configured.
func (s *metricSet) forget(domain string) {
	s.reloads.DeletePartialMatch(prometheus.Labels{"domain": domain})
}

// expiryCollector reports the expiry of every served certificate at scrape
// time, from the current snapshot.
type expiryCollector struct {
	m             *Manager
	days, expires *prometheus.Desc
}

var _ prometheus.Collector = (*expiryCollector)(nil)

// Describe implements prometheus.Collector.
func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.days
	ch <- c.expires
}

// Collect implements prometheus.Collector.
func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.o.Now()
	for _, s := range c.m.snap.Load().served {
		days := s.notAfter.Sub(now).Hours() / 24
		ch <- prometheus.MustNewConstMetric(c.days, prometheus.GaugeValue, days, s.domain)
		ch <- prometheus.MustNewConstMetric(c.expires, prometheus.GaugeValue, float64(s.notAfter.Unix()), s.domain)
	}
}

// handshakePrefix starts the lines net/http logs for failed handshakes.
const handshakePrefix = "http: TLS handshake error from "

// HandshakeErrorLog returns a logger for the HTTPS listener's
// http.Server.ErrorLog. It counts the server's "http: TLS handshake error
// from ADDR: REASON" lines into tls_handshake_errors_total{reason} and
// passes them to l at Debug level (scanners make them frequent and
// uninteresting); other lines (panics, accept errors) go to l at Warn
// level. A nil l means the Manager's logger.
func (m *Manager) HandshakeErrorLog(l *slog.Logger) *log.Logger {
	if l == nil {
		l = m.log
	}
	return log.New(&handshakeWriter{met: m.met, log: l}, "", 0)
}

// handshakeWriter is HandshakeErrorLog's writer; log.Logger hands it one
// whole line per Write.
type handshakeWriter struct {
	met *metricSet
	log *slog.Logger
}

func (w *handshakeWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	rest, ok := strings.CutPrefix(line, handshakePrefix)
	if !ok {
		w.log.Warn("HTTPS server error", "error", line)
		return len(p), nil
	}
	addr, msg, _ := strings.Cut(rest, ": ")
	reason := handshakeReason(msg)
	w.met.handshakes[reason].Inc()
	w.log.Debug("TLS handshake error", "remote_addr", addr, "reason", reason, "error", msg)
	return len(p), nil
}

// handshakeReason classifies the error text of a failed handshake.
func handshakeReason(msg string) string {
	switch {
	case strings.HasPrefix(msg, ErrNoCertificate.Error()), strings.Contains(msg, "no certificates configured"):
		return ReasonNoCertificate
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version not supported"),
		strings.Contains(msg, "unsupported SSLv2"), strings.Contains(msg, "inappropriate protocol fallback"):
		return ReasonUnsupportedVersion
	case strings.Contains(msg, "no cipher suite supported"), strings.Contains(msg, "no ECDHE curve supported"):
		return ReasonNoCipherSuite
	case strings.HasPrefix(msg, "remote error: tls: ") && strings.Contains(msg, "certificate"):
		return ReasonBadCertificate
	case strings.Contains(msg, "HTTP request to an HTTPS server"), strings.Contains(msg, "does not look like a TLS handshake"),
		strings.Contains(msg, "oversized record received"):
		return ReasonNotTLS
	case strings.HasSuffix(msg, "EOF"):
		return ReasonEOF
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline exceeded"):
		return ReasonTimeout
	case strings.Contains(msg, "connection reset"):
		return ReasonReset
	default:
		return ReasonOther
	}
}
