// Package fleetstats adds up the fleet's traffic for the rollouts' gates:
// a gate judges a canary on every node's requests, not only on those of
// the node that drives it.
//
// Each node's Publisher writes, at most once per interval (1 s) and only
// when something changed, its per-tag cumulative counts (metrics.TagStats:
// requests, errors, latency buckets) of the domains that have a running or
// paused rollout, as one JSON value under {prefix}/stats/{member}, attached
// to the node's cluster lease (the value goes when the node does). A
// domain's counts start at zero when the node first sees its rollout
// active, so traffic from before the rollout never counts; the value
// carries a random per-process incarnation.
//
// The leader's Aggregator watches {prefix}/stats/ and keeps fleet totals
// that only ever grow: for each member it remembers the last values of
// its incarnation and adds the increases (Fold). A new incarnation counts
// from zero; a series that goes down within an incarnation (or whose
// start changed) was reset and counts from zero; a member whose value is
// deleted (its lease expired) leaves its contribution in the totals. The
// totals implement rollout.Stats.
//
// The lag: a gate sees the fleet's traffic as published, so up to about
// one publish interval (plus etcd's propagation) old.
package fleetstats

import (
	"time"

	"fronttier/internal/metrics"
)

// Interval is how often a Publisher writes (at most).
const Interval = time.Second

// Publication is the value of {prefix}/stats/{member}.
type Publication struct {
	Member string `json:"member"`
	// Incarnation is random per process: a restarted node counts anew.
	Incarnation string `json:"incarnation"`
	// Domains are the counts of each domain with an active rollout.
	Domains map[string]Domain `json:"domains"`
}

// Domain is one domain's counts on one node.
type Domain struct {
	// Since is when the node started counting the domain (it first saw
	// its rollout active); a new Since is a new series.
	Since time.Time `json:"since"`
	// Tags are the cumulative counts by the tag routed to.
	Tags map[string]Series `json:"tags"`
}

// Series is metrics.TagStats on the wire.
type Series struct {
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`
	Latency  []uint64 `json:"latency,omitempty"`
}

func toSeries(s metrics.TagStats) Series {
	return Series{Requests: s.Requests, Errors: s.Errors, Latency: s.Latency}
}

// below reports whether any count of s is lower than prev's: the series
// was reset.
func (s Series) below(prev Series) bool {
	if s.Requests < prev.Requests || s.Errors < prev.Errors || len(s.Latency) < len(prev.Latency) {
		return true
	}
	for i, n := range prev.Latency {
		if s.Latency[i] < n {
			return true
		}
	}
	return false
}

// add returns t with s added.
func add(t metrics.TagStats, s Series) metrics.TagStats {
	out := metrics.TagStats{Requests: t.Requests + s.Requests, Errors: t.Errors + s.Errors,
		Latency: make([]uint64, max(len(t.Latency), len(s.Latency)))}
	copy(out.Latency, t.Latency)
	for i, n := range s.Latency {
		out.Latency[i] += n
	}
	return out
}

// minus returns the increase from prev to s (s not below prev).
func (s Series) minus(prev Series) Series {
	d := Series{Requests: s.Requests - prev.Requests, Errors: s.Errors - prev.Errors, Latency: append([]uint64(nil), s.Latency...)}
	for i, n := range prev.Latency {
		d.Latency[i] -= n
	}
	return d
}
