package fleetstats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/metrics"
)

// Aggregator keeps the fleet's totals per domain and tag from the nodes'
// publications; they only ever grow. It is safe for concurrent use.
type Aggregator struct {
	cli    *clientv3.Client
	prefix string // "/fronttier/stats/"
	log    *slog.Logger

	mu     sync.Mutex
	totals map[string]map[string]metrics.TagStats // guarded by mu: domain -> tag -> fleet total
	seen   map[string]seen                        // guarded by mu: by member, what was last folded
}

// seen is what was last folded of one member: its incarnation and, by
// domain, its last values (kept for domains it stopped publishing, so a
// series that comes back is not counted twice).
type seen struct {
	incarnation string
	domains     map[string]Domain
}

// NewAggregator returns the aggregator of the publications under
// {prefix}/stats/ on c (which stays the caller's); Sync and Follow feed
// it. Fold alone needs neither.
func NewAggregator(c *clientv3.Client, prefix string, log *slog.Logger) *Aggregator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Aggregator{cli: c, prefix: statsPrefix(prefix), log: log,
		totals: map[string]map[string]metrics.TagStats{}, seen: map[string]seen{}}
}

// statsPrefix is the publications' key prefix under the fleet's prefix.
func statsPrefix(prefix string) string { return strings.TrimRight(prefix, "/") + "/stats/" }

// Stats returns the fleet's totals of domain by tag (rollout.Stats).
func (a *Aggregator) Stats(domain string) map[string]metrics.TagStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]metrics.TagStats, len(a.totals[domain]))
	for tag, s := range a.totals[domain] {
		s.Latency = append([]uint64(nil), s.Latency...)
		out[tag] = s
	}
	return out
}

// Fold adds member's publication p to the totals: for each series the
// increase over the member's last value of the same incarnation and
// series; the whole value when the incarnation is new (a restarted
// process), the series is new (another Since) or it went down (a reset).
func (a *Aggregator) Fold(member string, p Publication) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.seen[member]
	if prev.incarnation != p.Incarnation {
		prev = seen{incarnation: p.Incarnation}
	}
	next := seen{incarnation: p.Incarnation, domains: make(map[string]Domain, len(prev.domains)+len(p.Domains))}
	for d, dom := range prev.domains {
		next.domains[d] = dom
	}
	for d, dom := range p.Domains {
		old, had := prev.domains[d]
		had = had && old.Since.Equal(dom.Since)
		t := a.totals[d]
		if t == nil {
			t = map[string]metrics.TagStats{}
			a.totals[d] = t
		}
		for tag, s := range dom.Tags {
			inc := s
			if o, ok := old.Tags[tag]; had && ok && !s.below(o) {
				inc = s.minus(o)
			}
			t[tag] = add(t[tag], inc)
		}
		next.domains[d] = dom
	}
	a.seen[member] = next
}

// Gone notes that member's publication was deleted (its lease expired or
// was revoked): its traffic stays in the totals, and its last values are
// kept, so that the same process publishing again adds only what is new.
func (a *Aggregator) Gone(member string) {
	a.log.Debug("fleet stats: a node's counts are gone; they stay in the totals", "member", member)
}

// Sync reads every publication and folds it; it returns the revision read
// at, for Follow.
func (a *Aggregator) Sync(ctx context.Context) (int64, error) {
	resp, err := a.cli.Get(ctx, a.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read fleet stats %s: %w", a.prefix, err)
	}
	for _, kv := range resp.Kvs {
		a.put(string(kv.Key), kv.Value)
	}
	return resp.Header.Revision, nil
}

// Follow folds the publications written after rev until ctx ends. When
// the watch fails (etcd compacted past it, the connection broke) it reads
// everything again (folding makes that harmless) and watches on.
func (a *Aggregator) Follow(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range a.cli.Watch(wctx, a.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if err := resp.Err(); err != nil {
				a.log.Warn("fleet stats: watch failed; reading again", "error", err)
				break
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					a.Gone(strings.TrimPrefix(string(ev.Kv.Key), a.prefix))
					continue
				}
				a.put(string(ev.Kv.Key), ev.Kv.Value)
			}
			rev = resp.Header.Revision
		}
		cancel()
		for ctx.Err() == nil {
			r, err := a.Sync(ctx)
			if err == nil {
				rev = r
				break
			}
			a.log.Warn("fleet stats: cannot read; retrying", "error", err)
			t := time.NewTimer(Interval)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// put folds one publication read at key.
func (a *Aggregator) put(key string, value []byte) {
	member := strings.TrimPrefix(key, a.prefix)
	var p Publication
	if err := json.Unmarshal(value, &p); err != nil {
		a.log.Warn("fleet stats: a node's counts cannot be read; ignored", "key", key, "error", err)
		return
	}
	a.Fold(member, p)
}
