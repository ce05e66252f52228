// Package store keeps fronttier's routing state where it lives between
// restarts and between nodes: the configuration file of a single node
// (File), or etcd, shared by a fleet. One interface, Store, serves both, so
// that the state package applies a change, a reload and a change made on
// another node through one path: a snapshot at a revision, a
// compare-and-swap against that revision, and a watch of what changed.
//
// A snapshot is a whole *config.Config. A store that shares only part of
// it (etcd shares domains, backends and [health_check]; listeners, logging,
// metrics and the API token stay per node) fills the rest from the node's
// own settings and ignores changes to it.
//
// Every implementation must pass the conformance suite in
// internal/store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"fronttier/internal/config"
)

// Revision orders the states of a store: a later state has a higher
// revision. Revisions are the store's own (etcd's, or a counter for a
// file): the same state has the same revision on every node that reads it
// from the same store. 0 means none.
type Revision int64

// Snapshot is the configuration a store held at a revision. Config must
// not be modified.
type Snapshot struct {
	Config *config.Config
	Rev    Revision
}

// Update is what Watch reports: a state of the store newer than any
// reported before, and what changed since the previous one.
type Update struct {
	Snapshot
	// Domains and Backends name the virtual hosts and backends added,
	// edited or removed; Settings says the shared settings
	// ([health_check]) changed. Full means anything may have changed (a
	// file read again, a watch that fell behind and reloaded): apply the
	// whole configuration.
	Domains  []string
	Backends []string
	Settings bool
	Full     bool
	// Written is when the change was written, where the store records it
	// (etcd: by the writing node's clock); zero when unknown.
	Written time.Time
	// Err, when set, says the store changed but its new state cannot be
	// used (a hand edit of the file that does not load); Snapshot is then
	// empty and the state in force stays. It wraps ErrInvalid.
	Err error
}

// Errors of the stores.
var (
	// ErrStale: a compare-and-swap lost, the store is past the revision it
	// was given. Load again, apply the change again, retry.
	ErrStale = errors.New("stale revision: the state changed meanwhile")
	// ErrUnavailable: the store cannot be reached; nothing was written.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalid: the store holds a state that cannot be used.
	ErrInvalid = errors.New("invalid stored state")
	// ErrEmpty: the store holds no state yet (an etcd prefix never
	// seeded).
	ErrEmpty = errors.New("store is empty")
)

// Store holds the configuration a node serves.
type Store interface {
	// Load returns the store's current state. ErrInvalid when it holds
	// one that cannot be used (nothing is returned then), ErrUnavailable
	// when it cannot be reached.
	Load(ctx context.Context) (Snapshot, error)
	// CompareAndSwap writes next if the store is still at prev.Rev (prev
	// is the snapshot next was derived from) and returns the new
	// revision, after which the write survives a crash of this process
	// (and, for etcd, of any minority of its members). ErrStale when the
	// store moved past prev.Rev, ErrUnavailable when it cannot be reached:
	// in both cases nothing was written.
	CompareAndSwap(ctx context.Context, prev Snapshot, next *config.Config) (Revision, error)
	// Watch reports every state after from, in order, until ctx ends, then
	// closes the channel. Updates may be coalesced (several changes in one
	// Full update) but never reordered; the caller skips those at or
	// below a revision it already has (its own writes come back too).
	Watch(ctx context.Context, from Revision) <-chan Update
}

// Describer is a Store that can say where it keeps the state ("configuration
// file /etc/fronttier/config.toml"), for messages to operators.
type Describer interface {
	Describe() string
}

// Describe names where s keeps the state, or "the store".
func Describe(s Store) string {
	if d, ok := s.(Describer); ok {
		return d.Describe()
	}
	return "the store"
}
