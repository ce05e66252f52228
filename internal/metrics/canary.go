package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/route"
)

// Routes gives the route table in force.
type Routes interface {
	Table() *route.Table
}

// WatchCanaries registers proxy_canary_percent{domain}: each domain's
// canary share as the data path applies it (0 for a domain without a
// canary), read from the route table in force at each scrape, so it can
// never disagree with it.
func (m *Metrics) WatchCanaries(r Routes) {
	m.reg.MustRegister(canaryCollector{
		routes: r,
		desc: prometheus.NewDesc("proxy_canary_percent",
			"Share of the domain's requests sent to its canary tag, in percent (0 when it has no canary); overrides come on top.",
			[]string{"domain"}, nil),
	})
}

// canaryCollector is proxy_canary_percent's collector.
type canaryCollector struct {
	routes Routes
	desc   *prometheus.Desc
}

func (c canaryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c canaryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.routes.Table().Hosts() {
		p := 0.0
		if s := h.Split; s != nil && s.Canary != nil {
			p = s.Percent
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, p, h.Domain)
	}
}
