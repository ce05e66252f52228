package app

import (
	"context"
	"sync"
	"time"

	"fronttier/internal/cluster"
	"fronttier/internal/config"
	"fronttier/internal/fleetstats"
	"fronttier/internal/leader"
	"fronttier/internal/rollout"
	"fronttier/internal/store"
)

// fleetRollouts is this node's part in a fleet's rollouts. Every node's
// controller makes the operators' changes; every node publishes its
// counts of the domains under a rollout (fleetstats.Publisher); one node,
// elected under {prefix}/elections/rollouts, adds up the fleet's counts
// (fleetstats.Aggregator) and drives the gates for as long as it leads.
type fleetRollouts struct {
	f      *fleet
	counts fleetstats.Source // this node's own (its metrics)
	ctl    *rollout.Controller
	agg    *fleetstats.Aggregator
	name   string                // this node's, from join
	pub    *fleetstats.Publisher // from join
}

// electionTTL is the lease of a node's campaign: a leader that dies is
// replaced this long after (a clean stop hands over at once).
const electionTTL = 5 * time.Second

// rolloutsKey is the election's key.
func (f *fleet) rolloutsKey() string { return f.store.Prefix() + "/elections/rollouts" }

// newFleetRollouts returns the fleet's rollouts, publishing counts (this
// node's own), with the aggregator the controller's gates are to read.
func (f *fleet) newFleetRollouts(counts fleetstats.Source) *fleetRollouts {
	r := &fleetRollouts{f: f, counts: counts, agg: fleetstats.NewAggregator(f.client, f.store.Prefix(), f.log)}
	f.rollouts = r
	return r
}

// join prepares the publishing of this node's counts of the domains under
// a rollout in cfg, under the node's lease, as self.
func (r *fleetRollouts) join(self cluster.Self, m *cluster.Member, cfg func() *config.Config) {
	r.name = self.Name
	r.pub = fleetstats.NewPublisher(fleetstats.PublisherOptions{Client: r.f.client, Prefix: r.f.store.Prefix(), Member: self.Name,
		Lease: m.Lease, Domains: func() []string { return activeRollouts(cfg()) }, Stats: r.counts, Log: r.f.log})
}

// activeRollouts returns the domains of cfg with a running or paused
// rollout.
func activeRollouts(cfg *config.Config) []string {
	var out []string
	for i := range cfg.VirtualHosts {
		if v := &cfg.VirtualHosts[i]; v.Rollout.Active() {
			out = append(out, v.Domain)
		}
	}
	return out
}

// run publishes the node's counts, posts its transitions to the webhook
// and campaigns to drive the gates, until ctx ends.
func (r *fleetRollouts) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.ctl.Notify(ctx) })
	wg.Go(func() { r.pub.Run(ctx) })
	leader.Run(ctx, leader.Options{Client: r.f.client, Key: r.f.rolloutsKey(), Name: r.name, TTL: electionTTL, Log: r.f.log,
		Lead: r.lead,
		Leading: func(on bool) {
			if on {
				r.f.leader.Set(1)
			} else {
				r.f.leader.Set(0)
			}
		}})
}

// lead drives the gates while this node leads (ctx): it reads every
// node's counts, forgets the windows it noted while it did not lead, and
// drives on the fleet's counts as they arrive.
func (r *fleetRollouts) lead(ctx context.Context) {
	rev, err := r.agg.Sync(ctx)
	if err != nil {
		r.f.log.Warn("cannot read the fleet's rollout counts; giving up the rollouts' leadership", "error", err)
		return
	}
	r.ctl.Forget()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.agg.Follow(ctx, rev) })
	r.f.log.Info("driving the fleet's rollouts")
	r.ctl.Drive(ctx)
	r.f.log.Info("no longer driving the fleet's rollouts")
}

// leaderName returns the name of the node that drives the fleet's
// rollouts, "" while none is elected.
func (r *fleetRollouts) leaderName(ctx context.Context) (string, error) {
	return leader.Current(ctx, r.f.client, r.f.rolloutsKey())
}

// touchesRollout reports whether the followed update u may have changed a
// rollout: the leader looks at once rather than at its next rescan.
func touchesRollout(u store.Update) bool {
	if u.Full || u.Config == nil {
		return true
	}
	for _, d := range u.Domains {
		if v := u.Config.Host(d); v != nil && v.Rollout != nil {
			return true
		}
	}
	return false
}
