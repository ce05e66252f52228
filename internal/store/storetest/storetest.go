// Package storetest is the conformance suite every store.Store must pass:
// the file store and the etcd store are proven by the same tests.
//
// A store's test calls Run with a Backing: something that opens Stores
// over one shared backing (a file, an etcd prefix), each like a node's
// own, already holding a seed configuration.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"fronttier/internal/config"
	"fronttier/internal/store"
)

// Backing makes a fresh backing holding seed and returns how to open a
// Store on it: each call is a new client, as another node would be.
type Backing func(t *testing.T, seed *config.Config) (open func() store.Store)

// Seed is the configuration every test starts from.
func Seed() *config.Config {
	c := config.Default()
	c.Proxy.ListenAddrHTTP = "127.0.0.1:0"
	c.VirtualHosts = []config.VirtualHost{
		{Domain: "a.example.com", EnabledBackendsTag: "a"},
		{Domain: "b.example.com", EnabledBackendsTag: "b"},
	}
	c.Backends = []config.Backend{
		{ID: "a1", Address: "127.0.0.1:1001", Tags: []string{"a"}, Weight: 1},
		{ID: "b1", Address: "127.0.0.1:1002", Tags: []string{"b"}, Weight: 1},
	}
	return c
}

// wait bounds every wait of the suite.
const wait = 20 * time.Second

// Options says what a store promises beyond the common contract.
type Options struct {
	// SharedRevisions: every client reads the same revision for the same
	// state (etcd's revisions), so revisions are compared across clients.
	// A file's revisions are each client's own counter.
	SharedRevisions bool
}

// Run runs the suite.
func Run(t *testing.T, b Backing, o Options) {
	t.Run("LoadSeed", func(t *testing.T) { testLoadSeed(t, b) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCAS(t, b, o) })
	t.Run("StaleLoses", func(t *testing.T) { testStale(t, b, o) })
	t.Run("OneWinnerOfARace", func(t *testing.T) { testRace(t, b) })
	t.Run("NoLostUpdates", func(t *testing.T) { testNoLostUpdates(t, b) })
	t.Run("WatchSeesOthers", func(t *testing.T) { testWatch(t, b) })
}

// shared is the part of a configuration every store keeps.
type shared struct {
	Health   config.HealthCheck
	Hosts    []config.VirtualHost
	Backends []config.Backend
}

func sharedOf(c *config.Config) shared {
	return shared{c.HealthCheck, c.VirtualHosts, c.Backends}
}

func load(t *testing.T, s store.Store) store.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if snap.Rev <= 0 || snap.Config == nil {
		t.Fatalf("Load: revision %d, config %v", snap.Rev, snap.Config != nil)
	}
	return snap
}

// withBackend returns a copy of c with one more backend (sorted by id).
func withBackend(c *config.Config, id string) *config.Config {
	n := c.Clone()
	n.Backends = append(n.Backends, config.Backend{ID: id, Address: "127.0.0.1:2000", Tags: []string{"a"}, Weight: 1})
	n.Sort()
	return n
}

func cas(s store.Store, prev store.Snapshot, next *config.Config) (store.Revision, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return s.CompareAndSwap(ctx, prev, next)
}

func testLoadSeed(t *testing.T, b Backing) {
	seed := Seed()
	s := b(t, seed)()
	snap := load(t, s)
	if got, want := sharedOf(snap.Config), sharedOf(seed); !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want the seed %+v", got, want)
	}
	if again := load(t, s); again.Rev != snap.Rev {
		t.Errorf("a second Load of an unchanged store: revision %d, then %d", snap.Rev, again.Rev)
	}
}

func testCAS(t *testing.T, b Backing, o Options) {
	open := b(t, Seed())
	s := open()
	snap := load(t, s)
	next := withBackend(snap.Config, "c1")
	rev, err := cas(s, snap, next)
	if err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	if rev <= snap.Rev {
		t.Errorf("revision after a write %d, not above %d", rev, snap.Rev)
	}
	for i, r := range []store.Store{s, open()} { // this client, and another node
		got := load(t, r)
		if (i == 0 || o.SharedRevisions) && got.Rev != rev {
			t.Errorf("client %d: Load after the write at revision %d, want %d", i, got.Rev, rev)
		}
		if !reflect.DeepEqual(sharedOf(got.Config), sharedOf(next)) {
			t.Errorf("client %d: Load after the write: %+v", i, sharedOf(got.Config).Backends)
		}
	}
}

func testStale(t *testing.T, b Backing, o Options) {
	open := b(t, Seed())
	s1, s2 := open(), open()
	snap1, snap2 := load(t, s1), load(t, s2)
	rev, err := cas(s1, snap1, withBackend(snap1.Config, "won"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cas(s2, snap2, withBackend(snap2.Config, "lost")); !errors.Is(err, store.ErrStale) {
		t.Fatalf("a write from an old revision: %v, want ErrStale", err)
	}
	got := load(t, s2)
	if (o.SharedRevisions && got.Rev != rev) || got.Config.Backend("lost") != nil || got.Config.Backend("won") == nil {
		t.Errorf("after a lost write the store is at %d with backends %v; want %d with \"won\" only",
			got.Rev, ids(got.Config), rev)
	}
}

func testRace(t *testing.T, b Backing) {
	open := b(t, Seed())
	const n = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	stores := make([]store.Store, n)
	snaps := make([]store.Snapshot, n)
	for i := range n { // every client at the same revision before any writes
		stores[i] = open()
		snaps[i] = load(t, stores[i])
	}
	for i := range n {
		s, snap := stores[i], snaps[i]
		wg.Go(func() {
			_, err := cas(s, snap, withBackend(snap.Config, fmt.Sprintf("r%d", i)))
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case !errors.Is(err, store.ErrStale):
				t.Errorf("racing write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d of %d writes from the same revision won, want exactly 1", won, n)
	}
}

// testNoLostUpdates: writers on several clients, each retrying on
// ErrStale from a fresh Load, all land.
func testNoLostUpdates(t *testing.T, b Backing) {
	open := b(t, Seed())
	const writers, each = 3, 4
	var wg sync.WaitGroup
	for w := range writers {
		s := open()
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				for try := 0; ; try++ {
					if try > 50 {
						t.Errorf("%s: no write after %d tries", id, try)
						return
					}
					snap := load(t, s)
					_, err := cas(s, snap, withBackend(snap.Config, id))
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrStale) {
						t.Errorf("%s: %v", id, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	got := ids(load(t, open()).Config)
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("w%d-%d", w, i); !slices.Contains(got, id) {
				t.Errorf("backend %s was acknowledged and lost; store has %v", id, got)
			}
		}
	}
}

// testWatch: a watcher sees another client's writes, in order, at their
// revisions, and its channel closes when its context ends.
func testWatch(t *testing.T, b Backing) {
	open := b(t, Seed())
	watcher, writer := open(), open()
	start := load(t, watcher)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := watcher.Watch(ctx, start.Rev)

	snap := load(t, writer)
	for _, id := range []string{"x1", "x2"} {
		next := withBackend(snap.Config, id)
		rev, err := cas(writer, snap, next)
		if err != nil {
			t.Fatal(err)
		}
		snap = store.Snapshot{Config: next, Rev: rev}
	}
	// Updates come in order, at rising revisions, until one holds both
	// writes (several may be coalesced into one).
	deadline := time.After(wait)
	last := start.Rev
	for done := false; !done; {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("the watch closed early")
			}
			if u.Err != nil {
				t.Fatalf("watch error: %v", u.Err)
			}
			if u.Rev <= last {
				t.Errorf("update at revision %d after %d", u.Rev, last)
			}
			last = u.Rev
			done = u.Config.Backend("x1") != nil && u.Config.Backend("x2") != nil
			if !done && u.Config.Backend("x2") != nil {
				t.Errorf("update at revision %d has the second write without the first: %v", u.Rev, ids(u.Config))
			}
		case <-deadline:
			t.Fatalf("no update with both writes; last revision %d", last)
		}
	}
	if got := ids(snap.Config); !slices.Contains(got, "x2") {
		t.Fatalf("writer lost its own write: %v", got)
	}
	cancel()
	deadline = time.After(wait)
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the watch did not close when its context ended")
		}
	}
}

func ids(c *config.Config) []string {
	var out []string
	for _, b := range c.Backends {
		out = append(out, b.ID)
	}
	return out
}
