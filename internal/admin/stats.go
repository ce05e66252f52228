package admin

import (
	"math"
	"net/http"

	"fronttier/internal/metrics"
)

// Stats reads the proxy's own per-domain, per-tag counts
// (internal/metrics' Metrics).
type Stats interface {
	// Stats returns domain's cumulative counts per tag routed to ("" for
	// requests routed to none); empty for a domain without requests.
	Stats(domain string) map[string]metrics.TagStats
}

var _ Stats = (*metrics.Metrics)(nil)

// tagStatsJSON is one tag's cumulative counts as GET /api/v1/stats shows
// them: requests and errors since the domain's first request, and the 99th
// percentile of their durations over the same time, in ms to 0.01.
type tagStatsJSON struct {
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	P99Ms    float64 `json:"p99_ms"`
}

// statsJSON is the answer of GET /api/v1/stats: every configured domain's
// counts per tag (an empty object before its first request), and the
// rollout of each domain that has one, as GET .../rollout shows it, so a
// dashboard polls one endpoint for every domain's live figures.
type statsJSON struct {
	Domains  map[string]map[string]tagStatsJSON `json:"domains"`
	Rollouts map[string]rolloutJSON             `json:"rollouts"`
}

// stats answers GET /api/v1/stats. Counts are cumulative: a client takes
// rates from the difference of two answers. It costs one snapshot of each
// domain's counters, no lock the data path takes.
func (a *API) stats(w http.ResponseWriter, _ *http.Request) error {
	if a.o.Stats == nil {
		return notFound("statistics are not available")
	}
	hosts := a.o.Store.Config().VirtualHosts
	out := statsJSON{
		Domains:  make(map[string]map[string]tagStatsJSON, len(hosts)),
		Rollouts: map[string]rolloutJSON{},
	}
	for _, v := range hosts {
		counts := a.o.Stats.Stats(v.Domain)
		tags := make(map[string]tagStatsJSON, len(counts))
		for tag, s := range counts {
			tags[tag] = tagStatsJSON{Requests: s.Requests, Errors: s.Errors, P99Ms: math.Round(s.Quantile(0.99)*100) / 100}
		}
		out.Domains[v.Domain] = tags
		if v.Rollout != nil {
			out.Rollouts[v.Domain] = toRolloutJSON(v.Domain, v.Rollout)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
