// Package leader elects one node of a fleet to do a job that only one may
// do at a time (in fronttier: drive the rollouts' gates), with etcd's
// concurrency.Election: each node campaigns under one key with its name;
// the elected one does the job with a context that ends when it loses the
// leadership (its session's lease expired: etcd unreachable, the process
// stalled) or when it stops, and it resigns on a clean stop so that the
// next candidate takes over at once instead of after the lease's TTL.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Options configures Run.
type Options struct {
	// Client is the fleet's etcd client; it stays the caller's.
	Client *clientv3.Client
	// Key is the election's key ("/fronttier/elections/rollouts").
	Key string
	// Name is this node's, the value the leader's key holds.
	Name string
	// TTL is the session lease's: a leader that stops keeping it alive
	// (killed, cut off) is replaced this long after. Default 5s.
	TTL time.Duration
	// Retry is how long Run waits after etcd failed it before it
	// campaigns again. Default 1s.
	Retry time.Duration
	// Lead does the job while this node leads; ctx ends when it does not
	// any more. Lead must return once ctx ends.
	Lead func(ctx context.Context)
	// Leading, if set, is told when this node becomes leader (true) and
	// when it stops (false).
	Leading func(bool)
	Log     *slog.Logger
}

// Run campaigns until ctx ends: each time this node is elected it calls
// o.Lead, and when Lead's leadership ends it campaigns again. A failure of
// etcd (no session, a lost lease) is logged and retried after o.Retry.
func Run(ctx context.Context, o Options) {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		if err := term(ctx, o); err != nil && ctx.Err() == nil {
			o.Log.Warn("leader election failed; campaigning again", "key", o.Key, "error", err, "retry_in", o.Retry)
			t := time.NewTimer(o.Retry)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// term is one session: campaign, lead until the session or ctx ends,
// resign. It returns nil when ctx ended.
func term(ctx context.Context, o Options) error {
	// The session lives on ctx: while etcd cannot be reached, creating
	// it waits, and a stop (ctx) ends the wait.
	s, err := concurrency.NewSession(o.Client, concurrency.WithTTL(int((o.TTL+time.Second-1)/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer s.Close() // revokes the lease when etcd answers (after a stop, Resign has removed our key already)
	// The term's context ends with ctx or with the session.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	e := concurrency.NewElection(s, o.Key)
	if err := e.Campaign(tctx, o.Name); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("campaign: %w", err)
	}
	o.Log.Info("elected leader", "key", o.Key, "name", o.Name)
	if o.Leading != nil {
		o.Leading(true)
	}
	o.Lead(tctx)
	if o.Leading != nil {
		o.Leading(false)
	}
	if ctx.Err() != nil {
		// A clean stop: hand over now rather than when the lease expires.
		rctx, rcancel := context.WithTimeout(context.Background(), o.TTL)
		defer rcancel()
		if err := e.Resign(rctx); err != nil {
			o.Log.Warn("cannot resign the leadership; it passes on when the lease expires", "key", o.Key, "error", err)
		} else {
			o.Log.Info("resigned the leadership", "key", o.Key, "name", o.Name)
		}
		return nil
	}
	return errLost
}

// errLost: the term ended while this node was to go on leading: its
// session's lease expired, or Lead gave up.
var errLost = errors.New("the leadership ended (the session's lease expired, or the job gave it up)")

// Current returns the name of key's leader, "" when there is none.
func Current(ctx context.Context, c *clientv3.Client, key string) (string, error) {
	resp, err := c.Get(ctx, key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("leader of %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
