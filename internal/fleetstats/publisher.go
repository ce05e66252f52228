package fleetstats

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/metrics"
)

// Source gives a domain's cumulative counts per tag on this node
// (metrics.Metrics).
type Source interface {
	Stats(domain string) map[string]metrics.TagStats
}

// PublisherOptions configures a Publisher; every field but Log is
// required.
type PublisherOptions struct {
	Client *clientv3.Client
	// Prefix is the fleet's key prefix ("/fronttier"); Member this node's
	// name: the value is {Prefix}/stats/{Member}.
	Prefix, Member string
	// Lease returns this node's cluster lease (0 while it has none): the
	// value is attached to it.
	Lease func() clientv3.LeaseID
	// Domains returns the domains with a running or paused rollout.
	Domains func() []string
	Stats   Source
	Log     *slog.Logger
}

// Publisher writes this node's counts of the domains under a rollout.
type Publisher struct {
	o           PublisherOptions
	key         string
	incarnation string

	// Owned by the goroutine that calls Publish.
	bases     map[string]base // by domain: where its counts start
	last      []byte          // the value last written
	lastLease clientv3.LeaseID
}

// base is where a domain's published counts start: the node's counts
// when it first saw the domain's rollout active.
type base struct {
	since time.Time
	at    map[string]metrics.TagStats
}

// NewPublisher returns a publisher with a new random incarnation.
func NewPublisher(o PublisherOptions) *Publisher {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{o: o, key: statsPrefix(o.Prefix) + o.Member, incarnation: rand.Text(), bases: map[string]base{}}
}

// Incarnation returns this process's incarnation.
func (p *Publisher) Incarnation() string { return p.incarnation }

// Run publishes every Interval until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			p.o.Log.Debug("fleet stats: cannot publish this node's counts", "key", p.key, "error", err)
		}
	}
}

// putTimeout bounds one write: while etcd cannot be reached the next
// interval tries again.
const putTimeout = 5 * Interval

// errNoLease: the node has no cluster lease yet to attach the value to.
var errNoLease = errors.New("no cluster lease yet")

// Publish writes the node's counts once, if they (or the lease) changed
// since the last write. Calls must not overlap.
func (p *Publisher) Publish(ctx context.Context) error {
	pub := Publication{Member: p.o.Member, Incarnation: p.incarnation, Domains: map[string]Domain{}}
	now := time.Now().UTC()
	for _, d := range p.o.Domains() {
		pub.Domains[d] = p.domain(d, now)
	}
	for d := range p.bases {
		if _, ok := pub.Domains[d]; !ok {
			delete(p.bases, d) // its rollout ended: a next one starts from zero
		}
	}
	if len(pub.Domains) == 0 && p.last == nil {
		return nil // nothing to say, and nothing said yet
	}
	data, err := json.Marshal(pub)
	if err != nil {
		return fmt.Errorf("encode %s: %w", p.key, err)
	}
	lease := p.o.Lease()
	if lease == 0 {
		return errNoLease
	}
	if bytes.Equal(data, p.last) && lease == p.lastLease {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, putTimeout)
	defer cancel()
	if _, err := p.o.Client.Put(ctx, p.key, string(data), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("put %s: %w", p.key, err)
	}
	p.last, p.lastLease = data, lease
	return nil
}

// domain returns domain's counts since its base, starting one when the
// domain is new or its counts went down (metrics forgot them).
func (p *Publisher) domain(domain string, now time.Time) Domain {
	cur := p.o.Stats.Stats(domain)
	b, ok := p.bases[domain]
	if ok {
		for tag, s := range cur {
			if bs, had := b.at[tag]; had && toSeries(s).below(toSeries(bs)) {
				ok = false
				break
			}
		}
	}
	if !ok {
		b = base{since: now, at: cur}
		p.bases[domain] = b
	}
	out := Domain{Since: b.since, Tags: make(map[string]Series, len(cur))}
	for tag, s := range cur {
		out.Tags[tag] = toSeries(s.Sub(b.at[tag]))
	}
	return out
}
