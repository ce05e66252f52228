package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"fronttier/internal/config"
)

// Etcd is the fleet's store: the shared document (domains, backends and
// [health_check]) in etcd under a prefix, one key per item, so that every
// node reads and writes the same document and a change of one domain is a
// write of one key.
//
// Key layout, for the prefix "/fronttier" (read it with
// `etcdctl get --prefix /fronttier/doc/`):
//
//	/fronttier/doc/meta                    {"format":1,"written_at":"..."}, written by every write transaction:
//	                                       its ModRevision is the document's revision
//	/fronttier/doc/settings/health_check   the [health_check] section
//	/fronttier/doc/domains/{domain}        one [[virtual_hosts]] entry, by its domain
//	/fronttier/doc/backends/{id}           one [[backends]] entry, by its id
//	/fronttier/locks/seed/                 the etcd mutex that makes seeding happen once
//
// Items are TOML documents with the keys of the configuration file (an
// entry of [[virtual_hosts]] is written `domain = 'a.example.com'`,
// `enabled_backends_tag = 'a'`, ...), decoded strictly: an unknown key is
// an error, as in the file. A domain's or backend's value must name the
// same domain or id as its key. Keys of other kinds under doc/ are ignored
// (a later format adds kinds this one need not understand); a format other
// than 1 is refused. A document exists only once meta does: Seed writes
// meta last, so a document seeded in several transactions is never seen
// half written.
//
// Every snapshot is the node's own configuration (listeners, logging,
// metrics, token, lets_encrypt, debug: see SetLocal) with the shared
// fields from etcd, hosts sorted by domain and backends by id. Revisions
// are etcd's, the same on every node.
//
// Etcd is safe for concurrent use.
type Etcd struct {
	cli   *clientv3.Client
	keys  etcdKeys
	local atomic.Pointer[config.Config] // the node's own part; never modified
}

var _ Store = (*Etcd)(nil)

// etcdKeys are the keys (and key prefixes) of one document.
type etcdKeys struct {
	prefix   string // as given: "/fronttier"
	doc      string // "/fronttier/doc/": everything a snapshot is read from
	meta     string
	health   string
	domains  string // "/fronttier/doc/domains/", followed by the domain
	backends string // "/fronttier/doc/backends/", followed by the id
	seedLock string
}

func newEtcdKeys(prefix string) etcdKeys {
	prefix = strings.TrimRight(prefix, "/")
	doc := prefix + "/doc/"
	return etcdKeys{
		prefix:   prefix,
		doc:      doc,
		meta:     doc + "meta",
		health:   doc + "settings/health_check",
		domains:  doc + "domains/",
		backends: doc + "backends/",
		seedLock: prefix + "/locks/seed",
	}
}

// etcdFormat is the layout's version, in meta.
const etcdFormat = 1

// Limits of one transaction: etcd's default --max-txn-ops, and a size
// under its default request limit (1.5 MiB) with room for the request's
// framing.
const (
	maxTxnOps   = 128
	maxTxnBytes = 1 << 20
)

// NewEtcd returns the store of the document under prefix ("/fronttier",
// without a trailing slash) on the client c, which stays the caller's to
// close. local is the node's own configuration (nil means that of an
// empty configuration file); its hosts, backends and [health_check] are
// ignored.
func NewEtcd(c *clientv3.Client, prefix string, local *config.Config) *Etcd {
	e := &Etcd{cli: c, keys: newEtcdKeys(prefix)}
	e.SetLocal(local)
	return e
}

// Prefix returns the key prefix the document lives under.
func (e *Etcd) Prefix() string { return e.keys.prefix }

// SetLocal replaces the node's own part of the snapshots returned from now
// on (the node's file reloaded); nil means that of an empty configuration
// file. c must not be modified afterwards. It does not make Watch report
// anything.
func (e *Etcd) SetLocal(c *config.Config) {
	if c == nil {
		var err error
		if c, err = config.Parse(nil); err != nil { // the defaults always parse
			c = config.Default()
		}
	}
	e.local.Store(c)
}

// Load implements Store with one linearizable read of the document.
// ErrEmpty when the prefix holds no document (meta absent).
func (e *Etcd) Load(ctx context.Context) (Snapshot, error) {
	resp, err := e.cli.Get(ctx, e.keys.doc, clientv3.WithPrefix())
	if err != nil {
		return Snapshot{}, e.fail("load", err)
	}
	d, bad := e.decodeDoc(resp.Kvs, false)
	if !d.present {
		return Snapshot{}, fmt.Errorf("etcd store %s: %w", e.keys.prefix, ErrEmpty)
	}
	if len(bad) > 0 {
		return Snapshot{}, fmt.Errorf("%w: etcd store %s: %w", ErrInvalid, e.keys.prefix, joinProblems(bad))
	}
	c := merge(e.local.Load(), &d)
	if err := c.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("%w: etcd store %s at revision %d: %w", ErrInvalid, e.keys.prefix, d.rev, err)
	}
	return Snapshot{Config: c, Rev: d.rev}, nil
}

// CompareAndSwap implements Store: one transaction that writes the shared
// items that differ between prev.Config and next, and meta, if meta is
// still at prev.Rev. Everything but the shared fields of next is ignored.
// The changed items must validate (an item etcd holds is read by every
// node); a change of more items than one transaction takes (127) is
// refused: write it in several, or seed a new prefix.
//
// As with any store over a network, ErrUnavailable after the request was
// sent cannot promise that nothing was written (the transaction may commit
// after the deadline); it is safe to retry, since a retry from prev.Rev
// then answers ErrStale.
func (e *Etcd) CompareAndSwap(ctx context.Context, prev Snapshot, next *config.Config) (Revision, error) {
	if prev.Rev <= 0 || prev.Config == nil {
		return 0, fmt.Errorf("%w: etcd store %s: a write needs the snapshot it was derived from (revision %d): load first",
			ErrStale, e.keys.prefix, prev.Rev)
	}
	ops, size, err := e.diff(prev.Config, next)
	if err != nil {
		return 0, fmt.Errorf("etcd store %s: compare-and-swap: %w", e.keys.prefix, err)
	}
	if len(ops)+1 > maxTxnOps || size > maxTxnBytes {
		return 0, fmt.Errorf("etcd store %s: compare-and-swap: %d changed items (%d bytes) do not fit one transaction (at most %d items, %d bytes)",
			e.keys.prefix, len(ops), size, maxTxnOps-1, maxTxnBytes)
	}
	ops = append(ops, clientv3.OpPut(e.keys.meta, newMeta()))
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(e.keys.meta), "=", int64(prev.Rev))).
		Then(ops...).
		Commit()
	if err != nil {
		return 0, e.fail("compare-and-swap", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: etcd store %s moved past revision %d", ErrStale, e.keys.prefix, prev.Rev)
	}
	return Revision(resp.Header.Revision), nil
}

// diff returns the puts and deletes that turn prev's shared part into
// next's, and their size in bytes. Each changed item is validated; a
// domain or id given twice is refused.
func (e *Etcd) diff(prev, next *config.Config) ([]clientv3.Op, int, error) {
	var ops []clientv3.Op
	size := 0
	put := func(key string, v []byte) {
		ops = append(ops, clientv3.OpPut(key, string(v)))
		size += len(key) + len(v)
	}
	del := func(key string) {
		ops = append(ops, clientv3.OpDelete(key))
		size += len(key)
	}
	var problems []error
	if prev.HealthCheck != next.HealthCheck {
		c := merge(e.local.Load(), &etcdDoc{health: next.HealthCheck})
		if err := c.ValidateShared(); err != nil {
			problems = append(problems, err)
		} else if v, err := encodeItem(&next.HealthCheck); err != nil {
			problems = append(problems, err)
		} else {
			put(e.keys.health, v)
		}
	}

	oldHosts := make(map[string]*config.VirtualHost, len(prev.VirtualHosts))
	for i := range prev.VirtualHosts {
		oldHosts[prev.VirtualHosts[i].Domain] = &prev.VirtualHosts[i]
	}
	seen := make(map[string]bool, len(next.VirtualHosts))
	for i := range next.VirtualHosts {
		h := &next.VirtualHosts[i]
		if seen[h.Domain] {
			problems = append(problems, fmt.Errorf("domain %q is given twice", h.Domain))
			continue
		}
		seen[h.Domain] = true
		if old := oldHosts[h.Domain]; old != nil && reflect.DeepEqual(old, h) {
			continue
		}
		if err := h.Validate(next); err != nil {
			problems = append(problems, fmt.Errorf("domain %q: %w", h.Domain, err))
			continue
		}
		v, err := encodeItem(h)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		put(e.keys.domains+h.Domain, v)
	}
	for i := range prev.VirtualHosts {
		if d := prev.VirtualHosts[i].Domain; !seen[d] {
			del(e.keys.domains + d)
		}
	}

	oldBackends := make(map[string]*config.Backend, len(prev.Backends))
	for i := range prev.Backends {
		oldBackends[prev.Backends[i].ID] = &prev.Backends[i]
	}
	seen = make(map[string]bool, len(next.Backends))
	for i := range next.Backends {
		b := &next.Backends[i]
		if seen[b.ID] {
			problems = append(problems, fmt.Errorf("backend %q is given twice", b.ID))
			continue
		}
		seen[b.ID] = true
		if old := oldBackends[b.ID]; old != nil && reflect.DeepEqual(old, b) {
			continue
		}
		if err := b.Validate(); err != nil {
			problems = append(problems, fmt.Errorf("backend %q: %w", b.ID, err))
			continue
		}
		v, err := encodeItem(b)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		put(e.keys.backends+b.ID, v)
	}
	for i := range prev.Backends {
		if id := prev.Backends[i].ID; !seen[id] {
			del(e.keys.backends + id)
		}
	}
	if len(problems) > 0 {
		return nil, 0, errors.Join(problems...)
	}
	return ops, size, nil
}

// fail wraps an error of the etcd client: ErrUnavailable when etcd could
// not be reached or could not serve (no leader, a deadline, a full
// database), so that the caller answers 503 and retries later.
func (e *Etcd) fail(op string, err error) error {
	if unreachable(err) {
		return fmt.Errorf("%w: etcd store %s: %s: %w", ErrUnavailable, e.keys.prefix, op, err)
	}
	return fmt.Errorf("etcd store %s: %s: %w", e.keys.prefix, op, err)
}

// unreachable reports whether err says etcd could not be reached or could
// not serve the request now, as opposed to refusing it.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted:
		return true
	}
	return false
}
