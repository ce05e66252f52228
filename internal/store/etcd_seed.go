package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"fronttier/internal/config"
)

// seedLockTTL is the lease of the seed lock, in seconds: how long other
// nodes wait for the lock of a seeder that died holding it.
const seedLockTTL = 10

// Seed batch limits: well under one transaction's limits (maxTxnOps,
// maxTxnBytes), so that a batch never meets them.
const (
	seedBatchOps   = 100
	seedBatchBytes = 512 << 10
)

// errLostSeedLock: the seed lock's lease expired while seeding (this node
// was cut off from etcd for longer than seedLockTTL); another node may be
// seeding now.
var errLostSeedLock = errors.New("lost the seed lock (its lease expired)")

// Seed writes c's shared part (domains, backends, [health_check]) as the
// document if and only if the prefix holds none yet, and returns the
// document in force, seeded reporting whether this call wrote it. Nodes
// that call Seed at the same moment write it once: the first to take the
// etcd mutex {prefix}/locks/seed writes, the others find its document.
//
// A document larger than one transaction is written in batches under the
// lock, each guarded by the lock's ownership, and meta last: readers (Load,
// Watch) see no document until it is whole. Items left by a seeder that
// died midway (keys under doc/ without meta) are deleted first.
//
// c must validate (with this node's own settings); it is not modified.
func (e *Etcd) Seed(ctx context.Context, c *config.Config) (snap Snapshot, seeded bool, err error) {
	snap, err = e.Load(ctx)
	if !errors.Is(err, ErrEmpty) {
		return snap, false, err
	}
	doc := c.CloneShallow()
	doc.Sort()
	if err := merge(e.local.Load(), &etcdDoc{health: doc.HealthCheck, hosts: doc.VirtualHosts, backends: doc.Backends}).Validate(); err != nil {
		return Snapshot{}, false, fmt.Errorf("etcd store %s: seed: the document does not validate: %w", e.keys.prefix, err)
	}
	batches, err := e.seedBatches(doc)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("etcd store %s: seed: %w", e.keys.prefix, err)
	}

	sess, err := concurrency.NewSession(e.cli, concurrency.WithTTL(seedLockTTL), concurrency.WithContext(ctx))
	if err != nil {
		return Snapshot{}, false, e.fail("seed: open a lock session", err)
	}
	// Closing the session revokes its lease, which releases the lock.
	defer sess.Close()
	mu := concurrency.NewMutex(sess, e.keys.seedLock)
	if err := mu.Lock(ctx); err != nil {
		return Snapshot{}, false, e.fail("seed: take the seed lock", err)
	}
	seeded, err = e.seedLocked(ctx, mu, batches)
	if err != nil {
		return Snapshot{}, false, err
	}
	snap, err = e.Load(ctx)
	return snap, seeded, err
}

// seedLocked writes the document, holding the seed lock mu, unless one
// exists already.
func (e *Etcd) seedLocked(ctx context.Context, mu *concurrency.Mutex, batches [][]clientv3.Op) (bool, error) {
	resp, err := e.cli.Get(ctx, e.keys.meta)
	if err != nil {
		return false, e.fail("seed: look for a document", err)
	}
	if len(resp.Kvs) > 0 {
		return false, nil // another node seeded it before we had the lock
	}
	owner := mu.IsOwner()
	txn := func(what string, ops ...clientv3.Op) error {
		resp, err := e.cli.Txn(ctx).If(owner).Then(ops...).Commit()
		if err != nil {
			return e.fail("seed: "+what, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("etcd store %s: seed: %s: %w", e.keys.prefix, what, errLostSeedLock)
		}
		return nil
	}
	if err := txn("delete a half-written document", clientv3.OpDelete(e.keys.doc, clientv3.WithPrefix())); err != nil {
		return false, err
	}
	for i, b := range batches {
		if err := txn(fmt.Sprintf("write batch %d of %d", i+1, len(batches)), b...); err != nil {
			return false, err
		}
	}
	if err := txn("write meta", clientv3.OpPut(e.keys.meta, newMeta())); err != nil {
		return false, err
	}
	return true, nil
}

// seedBatches returns the puts of every item of c's shared part, in
// batches that each fit one transaction.
func (e *Etcd) seedBatches(c *config.Config) ([][]clientv3.Op, error) {
	var batches [][]clientv3.Op
	var cur []clientv3.Op
	size := 0
	add := func(key string, item any) error {
		v, err := encodeItem(item)
		if err != nil {
			return err
		}
		if len(cur) == seedBatchOps || (len(cur) > 0 && size+len(key)+len(v) > seedBatchBytes) {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur = append(cur, clientv3.OpPut(key, string(v)))
		size += len(key) + len(v)
		return nil
	}
	if err := add(e.keys.health, &c.HealthCheck); err != nil {
		return nil, err
	}
	for i := range c.VirtualHosts {
		if err := add(e.keys.domains+c.VirtualHosts[i].Domain, &c.VirtualHosts[i]); err != nil {
			return nil, err
		}
	}
	for i := range c.Backends {
		if err := add(e.keys.backends+c.Backends[i].ID, &c.Backends[i]); err != nil {
			return nil, err
		}
	}
	return append(batches, cur), nil
}
