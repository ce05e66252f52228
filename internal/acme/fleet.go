package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Fleet shares ACME with the other nodes of a fleet through etcd: the
// account, certificates and keys, one order per domain for the whole
// fleet, and the answers to the CA's challenges (see "Fleet" in the
// package comment).
type Fleet struct {
	// Client is the fleet's etcd client; it stays the caller's to close.
	// Required.
	Client *clientv3.Client
	// Prefix is the fleet's key prefix ("/fronttier"); the keys of this
	// package live under {Prefix}/acme/ and {Prefix}/locks/acme/.
	Prefix string
	// Node is this node's name, written beside the failed attempts it
	// records so that every node can say where an order failed; "" means
	// the host name.
	Node string
	// Timeout bounds each request to etcd; zero means DefaultFleetTimeout.
	Timeout time.Duration
}

// Defaults of the fleet.
const (
	// DefaultFleetTimeout bounds each request to etcd.
	DefaultFleetTimeout = 5 * time.Second
	// defaultSessionTTL is the lease of a node's etcd session, in seconds:
	// a node that dies frees its order locks and challenge answers after
	// this long.
	defaultSessionTTL = 30
)

// errOrderLocked: another node of the fleet is ordering the domain.
var errOrderLocked = errors.New("another node of the fleet is ordering this certificate")

// errNotRunning: the fleet's session exists only while Run is active.
var errNotRunning = errors.New("acme manager not running")

// fleet is a Manager's part in a fleet: the etcd store, and the node's
// etcd session, whose lease holds its order locks and challenge answers
// while the node lives and lets them go when it dies.
type fleet struct {
	store *etcdStore
	node  string
	log   *slog.Logger
	ttl   int // the session's lease, in seconds; tests shorten it

	// lock is a one-slot semaphore (so that waiting for it honours
	// contexts) guarding sess and parent.
	lock chan struct{}
	// sess is the current session, nil before the first use and after it
	// was found ended (its lease expired while etcd was away): the next
	// use makes a new one.
	sess *concurrency.Session
	// parent is Run's context, which owns the session's keep-alive; nil
	// while Run is not active.
	parent context.Context
}

func newFleet(node string, st *etcdStore, log *slog.Logger) *fleet {
	if node == "" {
		node, _ = os.Hostname()
	}
	return &fleet{store: st, node: node, log: log, ttl: defaultSessionTTL, lock: make(chan struct{}, 1)}
}

// acquire takes f.lock, or returns ctx's error.
func (f *fleet) acquire(ctx context.Context) error {
	select {
	case f.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fleet) release() { <-f.lock }

// start lets sessions be made, kept alive until ctx ends.
func (f *fleet) start(ctx context.Context) {
	f.lock <- struct{}{}
	defer f.release()
	f.parent = ctx
}

// stop ends the session and revokes its lease, so that the node's locks
// and challenge answers go at once rather than when the lease expires.
func (f *fleet) stop() {
	f.lock <- struct{}{}
	defer f.release()
	f.parent = nil
	if f.sess == nil {
		return
	}
	f.sess.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), f.store.timeout)
	defer cancel()
	if _, err := f.store.cli.Revoke(ctx, f.sess.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		f.log.Warn("Revoking the fleet session failed; its locks go when its lease expires", "error", err)
	}
	f.sess = nil
}

// session returns the node's live session, making one if needed.
func (f *fleet) session(ctx context.Context) (*concurrency.Session, error) {
	if err := f.acquire(ctx); err != nil {
		return nil, err
	}
	defer f.release()
	if f.sess != nil {
		select {
		case <-f.sess.Done():
			f.log.Warn("The fleet session ended (etcd was away longer than its lease): its order locks and challenge answers are gone")
			f.sess = nil
		default:
			return f.sess, nil
		}
	}
	if f.parent == nil {
		return nil, errNotRunning
	}
	gctx, cancel := context.WithTimeout(ctx, f.store.timeout)
	lease, err := f.store.cli.Grant(gctx, int64(f.ttl))
	cancel()
	f.store.reached(err)
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	s, err := concurrency.NewSession(f.store.cli, concurrency.WithLease(lease.ID),
		concurrency.WithTTL(f.ttl), concurrency.WithContext(f.parent))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	f.sess = s
	return s, nil
}

// tryLock takes the fleet's order lock for domain without waiting: it
// returns errOrderLocked when another node holds it. The lock is held
// until unlock is called or the node's session ends.
func (f *fleet) tryLock(ctx context.Context, domain string) (unlock func(), err error) {
	sess, err := f.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("take the fleet's order lock: %w", err)
	}
	mu := concurrency.NewMutex(sess, f.store.keys.locks+domain)
	lctx, cancel := context.WithTimeout(ctx, f.store.timeout)
	err = mu.TryLock(lctx)
	cancel()
	if errors.Is(err, concurrency.ErrLocked) {
		f.store.reached(nil)
		return nil, errOrderLocked
	}
	f.store.reached(err)
	if err != nil {
		// The request may have been applied: leave no waiter behind.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.store.timeout)
		_, _ = f.store.cli.Delete(dctx, mu.Key())
		cancel()
		return nil, fmt.Errorf("take the fleet's order lock: %w", err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.store.timeout)
		defer cancel()
		if err := mu.Unlock(uctx); err != nil {
			f.log.Warn("Releasing the fleet's order lock failed; it goes with the node's session", "domain", domain, "error", err)
		}
	}, nil
}

// Challenge answers in etcd implement sharedChallenges: the value is the
// key authorization, under the node's session lease, so that the answers
// of a node that dies go with it.
var _ sharedChallenges = (*fleet)(nil)

func (f *fleet) challengeKey(k challengeKey) string {
	if k.alpn {
		return f.store.keys.alpn01 + k.name
	}
	return f.store.keys.http01 + k.name
}

func (f *fleet) put(ctx context.Context, k challengeKey, keyAuth string) error {
	sess, err := f.session(ctx)
	if err != nil {
		return fmt.Errorf("share challenge: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, f.store.timeout)
	defer cancel()
	_, err = f.store.cli.Put(pctx, f.challengeKey(k), keyAuth, clientv3.WithLease(sess.Lease()))
	f.store.reached(err)
	if err != nil {
		return fmt.Errorf("share challenge: %w", err)
	}
	return nil
}

func (f *fleet) remove(ctx context.Context, k challengeKey, keyAuth string) error {
	key := f.challengeKey(k)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.store.timeout)
	defer cancel()
	_, err := f.store.cli.Txn(dctx).
		If(clientv3.Compare(clientv3.Value(key), "=", keyAuth)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("remove shared challenge: %w", err)
	}
	return nil
}

func (f *fleet) get(ctx context.Context, k challengeKey) (string, bool) {
	gctx, cancel := context.WithTimeout(ctx, f.store.timeout)
	defer cancel()
	// Linearizable: the answer was written just before the CA was told
	// to look, maybe through another etcd member.
	resp, err := f.store.cli.Get(gctx, f.challengeKey(k))
	if err != nil {
		f.log.Debug("Looking up the fleet's challenge answers failed", "error", err)
		return "", false
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}
