// Package balance chooses a backend for each request among the backends of a
// pool: round robin, least connections or weighted round robin. Picking is
// lock-free and allocation-free: policies keep their state in atomics over an
// immutable backend list.
package balance

import (
	"fmt"
	"sync/atomic"

	"fronttier/internal/backend"
)

// Policy chooses one routable backend that is not in tried, or returns nil
// when there is none. tried holds the backends a request already failed on.
type Policy interface {
	Pick(tried []*backend.Backend) *backend.Backend
}

// Policy names, as in the configuration's lb_policy.
const (
	RoundRobinName = "round_robin"
	LeastConnName  = "least_conn"
	WeightedName   = "weighted"
)

var (
	_ Policy = (*RoundRobin)(nil)
	_ Policy = (*LeastConn)(nil)
	_ Policy = (*Weighted)(nil)
)

// Pool is the immutable set of backends that carry one tag, with the policy
// that balances over them.
type Pool struct {
	// Backends is every member, healthy or not, sorted by id.
	Backends []*backend.Backend
	policy   Policy
	panicRR  atomic.Uint64
	aff      affinity // the members' affinity keys
	// PanicLog throttles the log lines about panic-mode picks.
	PanicLog backend.Throttle
}

// NewPool builds a pool. weights, used by the weighted policy, gives each
// backend's weight (0 or missing means 1). An empty policy means round robin.
func NewPool(policy string, backends []*backend.Backend, weights []int) (*Pool, error) {
	p := &Pool{Backends: backends, aff: newAffinity(backends)}
	switch policy {
	case "", RoundRobinName:
		p.policy = &RoundRobin{backends: backends}
	case LeastConnName:
		p.policy = &LeastConn{backends: backends}
	case WeightedName:
		p.policy = NewWeighted(backends, weights)
	default:
		return nil, fmt.Errorf("unknown balancing policy %q", policy)
	}
	return p, nil
}

// Pick returns a backend for a request that has already failed on tried.
// It prefers routable backends, as the policy orders them. When every
// backend not yet tried is unhealthy it still returns one of them, with
// panic set: a broken health endpoint must not hide a working application
// (Envoy's panic mode). It returns nil when every backend has been tried.
func (p *Pool) Pick(tried []*backend.Backend) (b *backend.Backend, panicked bool) {
	if b := p.policy.Pick(tried); b != nil {
		return b, false
	}
	n := uint64(len(p.Backends))
	if n == 0 {
		return nil, false
	}
	start := p.panicRR.Add(1)
	for i := range n {
		b := p.Backends[(start+i)%n]
		if !contains(tried, b) {
			return b, true
		}
	}
	return nil, false
}

// Len returns the number of backends in the pool.
func (p *Pool) Len() int { return len(p.Backends) }

// Healthy returns how many backends of the pool are routable.
func (p *Pool) Healthy() int {
	n := 0
	for _, b := range p.Backends {
		if b.Routable() {
			n++
		}
	}
	return n
}

func contains(tried []*backend.Backend, b *backend.Backend) bool {
	for _, t := range tried {
		if t == b {
			return true
		}
	}
	return false
}

// usable reports whether b may take a request that failed on tried.
func usable(b *backend.Backend, tried []*backend.Backend) bool {
	return b.Routable() && !contains(tried, b)
}

// RoundRobin hands requests to each routable backend in turn.
type RoundRobin struct {
	backends []*backend.Backend
	next     atomic.Uint64
}

// NewRoundRobin returns a round-robin policy over backends.
func NewRoundRobin(backends []*backend.Backend) *RoundRobin {
	return &RoundRobin{backends: backends}
}

// Pick implements Policy.
func (r *RoundRobin) Pick(tried []*backend.Backend) *backend.Backend {
	n := uint64(len(r.backends))
	if n == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	for i := range n {
		if b := r.backends[(start+i)%n]; usable(b, tried) {
			skipAhead(&r.next, i)
			return b
		}
	}
	return nil
}

// skipAhead moves a rotation counter past the i backends a pick skipped,
// so that the next pick starts after the one chosen. Without it the
// backend after an unhealthy (or tried) one would take that one's share
// on top of its own.
func skipAhead(next *atomic.Uint64, i uint64) {
	if i > 0 {
		next.Add(i)
	}
}

// LeastConn sends each request to the routable backend with the fewest
// requests in flight; ties go round robin.
type LeastConn struct {
	backends []*backend.Backend
	next     atomic.Uint64
}

// NewLeastConn returns a least-connections policy over backends.
func NewLeastConn(backends []*backend.Backend) *LeastConn {
	return &LeastConn{backends: backends}
}

// Pick implements Policy.
func (l *LeastConn) Pick(tried []*backend.Backend) *backend.Backend {
	n := uint64(len(l.backends))
	if n == 0 {
		return nil
	}
	start := l.next.Add(1) - 1
	var best *backend.Backend
	var bestActive int64
	var bestAt uint64
	for i := range n {
		b := l.backends[(start+i)%n]
		if !usable(b, tried) {
			continue
		}
		if a := b.Active(); best == nil || a < bestActive {
			best, bestActive, bestAt = b, a, i
		}
	}
	skipAhead(&l.next, bestAt)
	return best
}

// Weighted is smooth weighted round robin (nginx's order: weights 5,1,1
// give a a b a c a a), precomputed into a schedule at build time so that
// Pick is one atomic add.
type Weighted struct {
	backends []*backend.Backend
	schedule []uint32 // indexes into backends
	next     atomic.Uint64
}

// maxSchedule bounds the precomputed schedule; larger weight sums are
// scaled down proportionally.
const maxSchedule = 1 << 16

// NewWeighted returns a weighted round-robin policy. weights[i] is
// backends[i]'s weight; 0 or missing means 1.
func NewWeighted(backends []*backend.Backend, weights []int) *Weighted {
	w := make([]int, len(backends))
	total := 0
	for i := range w {
		w[i] = 1
		if i < len(weights) && weights[i] > 0 {
			w[i] = weights[i]
		}
		total += w[i]
	}
	if total > maxSchedule {
		for i := range w {
			w[i] = max(1, w[i]*maxSchedule/total)
		}
	}
	g := 0
	for _, x := range w {
		g = gcd(g, x)
	}
	total = 0
	for i := range w {
		w[i] /= max(g, 1)
		total += w[i]
	}
	sched := make([]uint32, 0, total)
	cur := make([]int, len(w))
	for range total {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched = append(sched, uint32(best))
	}
	return &Weighted{backends: backends, schedule: sched}
}

// Pick implements Policy.
func (w *Weighted) Pick(tried []*backend.Backend) *backend.Backend {
	n := uint64(len(w.schedule))
	if n == 0 {
		return nil
	}
	start := w.next.Add(1) - 1
	for i := range n {
		if b := w.backends[w.schedule[(start+i)%n]]; usable(b, tried) {
			skipAhead(&w.next, i)
			return b
		}
	}
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
