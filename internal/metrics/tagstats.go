package metrics

import (
	"sync"
	"sync/atomic"
)

// TagStats are the cumulative counts of one domain's requests routed to
// one tag, since the domain's first request (or since it was last
// forgotten): what a rollout compares between a canary and its baseline.
// Two snapshots subtracted (Sub) give the counts of the time between them.
type TagStats struct {
	// Requests counts every finished request; Errors those with a 5xx
	// answer or that failed or were cut short (the error label's rule).
	Requests, Errors uint64
	// Latency counts requests by duration: Latency[i] those that took at
	// most LatencyBounds()[i] ms (and more than the bound before); the
	// last entry those that took longer than every bound. Its sum is
	// Requests.
	Latency []uint64
}

// latencyBuckets is the number of bounds of TagStats.Latency: 0.25 ms
// growing by a quarter each, to past a minute.
const latencyBuckets = 57

// latencyBounds are TagStats' bucket bounds in ms. Built once, never
// changed.
var latencyBounds = func() (b [latencyBuckets]float64) {
	v := 0.25
	for i := range b {
		b[i] = v
		v *= 1.25
	}
	return b
}()

// LatencyBounds returns the upper bounds, in ms, of TagStats.Latency's
// buckets: 0.25 ms, then a quarter more each, to about 68 s.
func LatencyBounds() []float64 { return append([]float64(nil), latencyBounds[:]...) }

// ErrorRate returns Errors/Requests, 0 when there were no requests.
func (s TagStats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Quantile returns an estimate of the q-quantile (0 < q <= 1) of the
// durations in ms, interpolated within its bucket as Prometheus's
// histogram_quantile does (within 25% of the true value); 0 when there
// were no requests, and the last bound when it lies beyond every bound.
func (s TagStats) Quantile(q float64) float64 {
	var total uint64
	for _, n := range s.Latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, n := range s.Latency {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i >= latencyBuckets {
			return latencyBounds[latencyBuckets-1]
		}
		lo := 0.0
		if i > 0 {
			lo = latencyBounds[i-1]
		}
		return lo + (latencyBounds[i]-lo)*(rank-float64(seen))/float64(n)
	}
	return latencyBounds[latencyBuckets-1]
}

// Sub returns the counts of s minus those of an earlier snapshot prev of
// the same series: the traffic between the two.
func (s TagStats) Sub(prev TagStats) TagStats {
	d := TagStats{Requests: s.Requests - prev.Requests, Errors: s.Errors - prev.Errors,
		Latency: append([]uint64(nil), s.Latency...)}
	for i := range min(len(d.Latency), len(prev.Latency)) {
		d.Latency[i] -= prev.Latency[i]
	}
	return d
}

// Stats returns a snapshot of domain's counts per tag routed to ("" for
// requests routed to none: a redirect, a refused upload). It is empty for
// a domain without requests. Counts of different tags are read one after
// the other, not at one instant.
func (m *Metrics) Stats(domain string) map[string]TagStats {
	v, ok := m.stats.Load(domain)
	if !ok {
		return map[string]TagStats{}
	}
	tags := *v.(*domainStats).tags.Load()
	out := make(map[string]TagStats, len(tags))
	for tag, c := range tags {
		out[tag] = c.snapshot()
	}
	return out
}

// domainStats holds one domain's counters per tag. The map is replaced,
// never changed, when a tag appears, so readers need no lock.
type domainStats struct {
	mu   sync.Mutex // serialises adding a tag
	tags atomic.Pointer[map[string]*tagCounters]
}

// counters returns the counters of domain and tag, creating them; it is
// called once per series, not per request.
func (m *Metrics) counters(domain, tag string) *tagCounters {
	v, ok := m.stats.Load(domain)
	if !ok {
		d := &domainStats{}
		d.tags.Store(&map[string]*tagCounters{})
		v, _ = m.stats.LoadOrStore(domain, d)
	}
	d := v.(*domainStats)
	if c := (*d.tags.Load())[tag]; c != nil {
		return c
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := *d.tags.Load()
	if c := cur[tag]; c != nil {
		return c
	}
	next := make(map[string]*tagCounters, len(cur)+1)
	for k, c := range cur {
		next[k] = c
	}
	c := &tagCounters{}
	next[tag] = c
	d.tags.Store(&next)
	return c
}

// tagCounters are TagStats as atomics: adding a request is one atomic
// add (two for an error), without lock or allocation. The requests are
// the sum of the latency buckets.
type tagCounters struct {
	errors  atomic.Uint64
	latency [latencyBuckets + 1]atomic.Uint64
}

func (c *tagCounters) add(failed bool, ms float64) {
	if failed {
		c.errors.Add(1)
	}
	c.latency[bucketOf(ms)].Add(1)
}

// bucketOf returns the index of the first bound at or above ms
// (latencyBuckets when ms is above every bound): a binary search.
func bucketOf(ms float64) int {
	lo, hi := 0, latencyBuckets
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if latencyBounds[mid] < ms {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (c *tagCounters) snapshot() TagStats {
	// Errors first: a request is counted in its bucket after its error,
	// so a snapshot never shows more errors than requests.
	s := TagStats{Errors: c.errors.Load(), Latency: make([]uint64, len(c.latency))}
	for i := range c.latency {
		s.Latency[i] = c.latency[i].Load()
		s.Requests += s.Latency[i]
	}
	return s
}
