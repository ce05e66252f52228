package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/config"
	"fronttier/internal/store"
	"fronttier/internal/store/storetest"
	"fronttier/internal/testutil/etcdtest"
)

// etcdWait bounds every wait of these tests.
const etcdWait = 20 * time.Second

func etcdContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), etcdWait)
	t.Cleanup(cancel)
	return ctx
}

// seedEtcd seeds prefix with seed through a new client and returns the
// store and the seeded snapshot.
func seedEtcd(t *testing.T, c *etcdtest.Cluster, prefix string, seed *config.Config) (*store.Etcd, store.Snapshot) {
	t.Helper()
	s := store.NewEtcd(c.Client(t), prefix, seed)
	snap, seeded, err := s.Seed(etcdContext(t), seed)
	if err != nil || !seeded {
		t.Fatalf("Seed %s: seeded %v, %v", prefix, seeded, err)
	}
	return s, snap
}

// shared is the part of a configuration the etcd store keeps.
func shared(c *config.Config) any {
	return []any{c.HealthCheck, c.VirtualHosts, c.Backends}
}

func withBackend(c *config.Config, id string) *config.Config {
	n := c.Clone()
	n.Backends = append(n.Backends, config.Backend{ID: id, Address: "127.0.0.1:2000", Tags: []string{"a"}, Weight: 1})
	n.Sort()
	return n
}

// nextUpdate returns the next update of a watch, failing the test when
// none comes in time or the watch closed.
func nextUpdate(t *testing.T, updates <-chan store.Update) store.Update {
	t.Helper()
	select {
	case u, ok := <-updates:
		if !ok {
			t.Fatal("the watch closed")
		}
		return u
	case <-time.After(etcdWait):
		t.Fatal("no update")
	}
	return store.Update{}
}

// TestEtcd runs the conformance suite and the etcd store's own tests on
// one three-member cluster, each on a prefix of its own.
func TestEtcd(t *testing.T) {
	cluster := etcdtest.Start(t, 3)
	var n atomic.Int64
	prefix := func() string { return fmt.Sprintf("/test/%d", n.Add(1)) }

	t.Run("Conformance", func(t *testing.T) {
		backing := func(t *testing.T, seed *config.Config) func() store.Store {
			p := prefix()
			seedEtcd(t, cluster, p, seed)
			return func() store.Store { return store.NewEtcd(cluster.Client(t), p, seed) }
		}
		storetest.Run(t, backing, storetest.Options{SharedRevisions: true})
	})
	t.Run("SeedOnce", func(t *testing.T) { testEtcdSeedOnce(t, cluster, prefix()) })
	t.Run("LargeSeed", func(t *testing.T) { testEtcdLargeSeed(t, cluster, prefix()) })
	t.Run("WatchReportsWhatChanged", func(t *testing.T) { testEtcdWatchChanges(t, cluster, prefix()) })
	t.Run("LocalPart", func(t *testing.T) { testEtcdLocal(t, cluster, prefix()) })
	t.Run("Invalid", func(t *testing.T) { testEtcdInvalid(t, cluster, prefix()) })
	// Last: it compacts the history of every prefix.
	t.Run("WatchAfterCompaction", func(t *testing.T) { testEtcdCompaction(t, cluster, prefix()) })
	t.Run("WatchResumedAfterCompaction", func(t *testing.T) { testEtcdResumeCompacted(t, cluster, prefix()) })
}

// testEtcdSeedOnce: nodes that seed an empty prefix at the same moment,
// each with its own document, write it once: one reports seeded, and all
// return the same document, the seeded one, at the same revision.
func testEtcdSeedOnce(t *testing.T, c *etcdtest.Cluster, prefix string) {
	const nodes = 5
	type result struct {
		snap   store.Snapshot
		seeded bool
		err    error
	}
	results := make([]result, nodes)
	seeds := make([]*config.Config, nodes)
	stores := make([]*store.Etcd, nodes)
	for i := range nodes {
		seeds[i] = withBackend(storetest.Seed(), fmt.Sprintf("node%d", i))
		stores[i] = store.NewEtcd(c.Client(t), prefix, seeds[i])
	}
	ctx := etcdContext(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			snap, seeded, err := stores[i].Seed(ctx, seeds[i])
			results[i] = result{snap, seeded, err}
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("node %d: Seed: %v", i, r.err)
		}
		if r.seeded {
			if winner >= 0 {
				t.Fatalf("nodes %d and %d both seeded", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no node seeded")
	}
	want := results[winner].snap
	if !reflect.DeepEqual(shared(want.Config), shared(seeds[winner])) {
		t.Errorf("the seeder's snapshot is not its seed: %v", want.Config.Backends)
	}
	for i, r := range results {
		if r.snap.Rev != want.Rev || !reflect.DeepEqual(shared(r.snap.Config), shared(want.Config)) {
			t.Errorf("node %d: Seed returned revision %d with backends %v; want %d with %v",
				i, r.snap.Rev, r.snap.Config.Backends, want.Rev, want.Config.Backends)
		}
	}
	if _, seeded, err := stores[0].Seed(ctx, seeds[0]); err != nil || seeded {
		t.Errorf("Seed of a seeded prefix: seeded %v, %v", seeded, err)
	}
}

// testEtcdLargeSeed: a document too large for one transaction is seeded
// in batches, yet a watcher started on the empty prefix sees it only
// whole, as one Full update; a write of more items than a transaction
// takes is refused and writes nothing.
func testEtcdLargeSeed(t *testing.T, c *etcdtest.Cluster, prefix string) {
	const hosts, backends = 2000, 500
	seed := storetest.Seed()
	for i := range hosts {
		seed.VirtualHosts = append(seed.VirtualHosts, config.VirtualHost{Domain: fmt.Sprintf("h%04d.example.com", i), EnabledBackendsTag: "a"})
	}
	for i := range backends {
		seed.Backends = append(seed.Backends, config.Backend{ID: fmt.Sprintf("b%04d", i), Address: "127.0.0.1:3000", Tags: []string{"a"}, Weight: 1})
	}
	seed.Sort()
	ctx := etcdContext(t)
	watcher := store.NewEtcd(c.Client(t), prefix, nil)
	if _, err := watcher.Load(ctx); !errors.Is(err, store.ErrEmpty) {
		t.Fatalf("Load of an empty prefix: %v, want ErrEmpty", err)
	}
	updates := watcher.Watch(ctx, 0)

	s, snap := seedEtcd(t, c, prefix, seed)
	if !reflect.DeepEqual(shared(snap.Config), shared(seed)) {
		t.Fatalf("seeded %d hosts and %d backends, want %d and %d", len(snap.Config.VirtualHosts), len(snap.Config.Backends),
			len(seed.VirtualHosts), len(seed.Backends))
	}
	u := nextUpdate(t, updates)
	if u.Err != nil {
		t.Fatalf("first update: %v", u.Err)
	}
	if !u.Full || u.Rev != snap.Rev || !reflect.DeepEqual(shared(u.Config), shared(seed)) {
		t.Fatalf("first update: full %v at %d (want %d), %d hosts; want the whole seed",
			u.Full, u.Rev, snap.Rev, len(u.Config.VirtualHosts))
	}

	next := snap.Config.Clone()
	for i := range 200 {
		next.Backends = append(next.Backends, config.Backend{ID: fmt.Sprintf("x%03d", i), Address: "127.0.0.1:3000", Tags: []string{"a"}})
	}
	next.Sort()
	if _, err := s.CompareAndSwap(ctx, snap, next); err == nil || errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a write of 200 items: %v, want an error saying it does not fit", err)
	}
	if got, err := s.Load(ctx); err != nil || got.Rev != snap.Rev {
		t.Fatalf("after a refused write: revision %d, %v; want %d", got.Rev, err, snap.Rev)
	}
}

// testEtcdWatchChanges: each write is one update at its revision, naming
// what it changed; another node's snapshot holds the watcher's own local
// part; the local part of a write is ignored.
func testEtcdWatchChanges(t *testing.T, c *etcdtest.Cluster, prefix string) {
	s, snap := seedEtcd(t, c, prefix, storetest.Seed())
	local := storetest.Seed()
	local.Logging.Level = "debug"
	watcher := store.NewEtcd(c.Client(t), prefix, local)
	ctx := etcdContext(t)
	updates := watcher.Watch(ctx, snap.Rev)

	write := func(edit func(*config.Config)) store.Snapshot {
		t.Helper()
		next := snap.Config.Clone()
		edit(next)
		next.Sort()
		rev, err := s.CompareAndSwap(ctx, snap, next)
		if err != nil {
			t.Fatal(err)
		}
		snap = store.Snapshot{Config: next, Rev: rev}
		return snap
	}
	tests := []struct {
		name     string
		edit     func(*config.Config)
		domains  []string
		backends []string
		settings bool
	}{
		{name: "edit a domain", edit: func(c *config.Config) { c.Host("a.example.com").EnabledBackendsTag = "b" },
			domains: []string{"a.example.com"}},
		{name: "add a backend", edit: func(c *config.Config) {
			c.Backends = append(c.Backends, config.Backend{ID: "c1", Address: "127.0.0.1:1003", Tags: []string{"a"}})
		}, backends: []string{"c1"}},
		{name: "health check", edit: func(c *config.Config) { c.HealthCheck.Path = "/ready" }, settings: true},
		{name: "remove a domain and a backend", edit: func(c *config.Config) {
			c.VirtualHosts = slices.DeleteFunc(c.VirtualHosts, func(h config.VirtualHost) bool { return h.Domain == "b.example.com" })
			c.Backends = slices.DeleteFunc(c.Backends, func(b config.Backend) bool { return b.ID == "b1" })
		}, domains: []string{"b.example.com"}, backends: []string{"b1"}},
		{name: "local settings only", edit: func(c *config.Config) { c.Logging.Level = "error" }},
	}
	for _, tt := range tests {
		want := write(tt.edit)
		u := nextUpdate(t, updates)
		if u.Err != nil || u.Full || u.Rev != want.Rev {
			t.Fatalf("%s: update at %d (want %d), full %v, err %v", tt.name, u.Rev, want.Rev, u.Full, u.Err)
		}
		if !slices.Equal(u.Domains, tt.domains) || !slices.Equal(u.Backends, tt.backends) || u.Settings != tt.settings {
			t.Errorf("%s: update names domains %v, backends %v, settings %v; want %v, %v, %v",
				tt.name, u.Domains, u.Backends, u.Settings, tt.domains, tt.backends, tt.settings)
		}
		if !reflect.DeepEqual(shared(u.Config), shared(want.Config)) {
			t.Errorf("%s: update holds %+v, want %+v", tt.name, shared(u.Config), shared(want.Config))
		}
		if u.Config.Logging.Level != "debug" {
			t.Errorf("%s: update's logging level %q, want the watcher's own \"debug\"", tt.name, u.Config.Logging.Level)
		}
	}
}

// testEtcdLocal: a snapshot's local part is the node's own, replaced by
// SetLocal.
func testEtcdLocal(t *testing.T, c *etcdtest.Cluster, prefix string) {
	s, _ := seedEtcd(t, c, prefix, storetest.Seed())
	ctx := etcdContext(t)
	local := config.Default()
	local.Proxy.ListenAddrHTTP = "127.0.0.1:8080"
	local.VirtualHosts = []config.VirtualHost{{Domain: "local.example.com", EnabledBackendsTag: "x"}}
	s.SetLocal(local)
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Config.Proxy.ListenAddrHTTP != "127.0.0.1:8080" || snap.Config.Host("local.example.com") != nil ||
		!reflect.DeepEqual(shared(snap.Config), shared(storetest.Seed())) {
		t.Errorf("Load after SetLocal: listener %q, hosts %v", snap.Config.Proxy.ListenAddrHTTP, snap.Config.VirtualHosts)
	}
}

// testEtcdInvalid: an item that does not load makes Load answer ErrInvalid
// and the watch report Err; once fixed, the watch reports a Full update. A
// document of another format is refused.
func testEtcdInvalid(t *testing.T, c *etcdtest.Cluster, prefix string) {
	s, snap := seedEtcd(t, c, prefix, storetest.Seed())
	ctx := etcdContext(t)
	updates := s.Watch(ctx, snap.Rev)
	cli := c.Client(t)
	meta := prefix + "/doc/meta"
	commit := func(ops ...clientv3.Op) {
		t.Helper()
		if _, err := cli.Txn(ctx).Then(append(ops, clientv3.OpPut(meta, `{"format":1}`))...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	bad := prefix + "/doc/domains/x.example.com"
	commit(clientv3.OpPut(bad, "domain = \"x.example.com\"\nenabled_backends_tag = \"a\"\ncolour = \"red\"\n"))
	if _, err := s.Load(ctx); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Load with an unknown key in an item: %v, want ErrInvalid", err)
	}
	if u := nextUpdate(t, updates); !errors.Is(u.Err, store.ErrInvalid) || u.Config != nil {
		t.Errorf("watch of an item with an unknown key: err %v, want ErrInvalid", u.Err)
	}
	commit(clientv3.OpPut(bad, "domain = \"x.example.com\"\nenabled_backends_tag = \"a\"\n"))
	u := nextUpdate(t, updates)
	if u.Err != nil {
		t.Fatalf("first update: %v", u.Err)
	}
	if !u.Full || u.Config.Host("x.example.com") == nil {
		t.Errorf("watch after the fix: full %v, err %v; want a Full update with the host", u.Full, u.Err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Errorf("Load after the fix: %v", err)
	}
	if _, err := cli.Put(ctx, meta, `{"format":2}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Load of format 2: %v, want ErrInvalid", err)
	}
}

// testEtcdCompaction: a watch from a revision compacted away, and one from
// 0, start with a Full update holding the current document.
func testEtcdCompaction(t *testing.T, c *etcdtest.Cluster, prefix string) {
	s, snap := seedEtcd(t, c, prefix, storetest.Seed())
	ctx := etcdContext(t)
	from := snap.Rev
	for _, id := range []string{"k1", "k2", "k3"} {
		next := withBackend(snap.Config, id)
		rev, err := s.CompareAndSwap(ctx, snap, next)
		if err != nil {
			t.Fatal(err)
		}
		snap = store.Snapshot{Config: next, Rev: rev}
	}
	cli := c.Client(t)
	if _, err := cli.Compact(ctx, int64(snap.Rev)); err != nil {
		t.Fatal(err)
	}
	for _, start := range []store.Revision{from, 0} {
		u := nextUpdate(t, s.Watch(ctx, start))
		if u.Err != nil || !u.Full || u.Rev != snap.Rev || !reflect.DeepEqual(shared(u.Config), shared(snap.Config)) {
			t.Errorf("watch from %d: full %v at %d, err %v; want Full at %d with the current document",
				start, u.Full, u.Rev, u.Err, snap.Rev)
		}
	}
}

// testEtcdResumeCompacted: a running watch whose member dies while
// the document changes and its history is compacted resumes, when the
// member is back, with a Full update holding the current document.
func testEtcdResumeCompacted(t *testing.T, c *etcdtest.Cluster, prefix string) {
	s, snap := seedEtcd(t, c, prefix, storetest.Seed())
	ctx := etcdContext(t)
	member := (c.Leader(t) + 1) % 3 // a follower: no election
	updates := store.NewEtcd(c.MemberClient(t, member), prefix, nil).Watch(ctx, snap.Rev)
	next := withBackend(snap.Config, "k0")
	rev, err := s.CompareAndSwap(ctx, snap, next)
	if err != nil {
		t.Fatal(err)
	}
	if u := nextUpdate(t, updates); u.Err != nil || u.Full || u.Rev != rev {
		t.Fatalf("update before the outage: full %v at %d, err %v; want an incremental one at %d", u.Full, u.Rev, u.Err, rev)
	}
	snap = store.Snapshot{Config: next, Rev: rev}

	// Killed, not stopped: a member stopping gracefully waits for its
	// open watch streams for seconds.
	c.Kill(member)
	// The writer's client may have been talking to the killed member: a
	// write can answer Unavailable once; writeBackend retries, bounded.
	for _, id := range []string{"k1", "k2"} {
		if err := writeBackend(ctx, s, id); err != nil {
			t.Fatal(err)
		}
	}
	if snap, err = s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(t).Compact(ctx, int64(snap.Rev)); err != nil {
		t.Fatal(err)
	}
	c.Restart(member)
	c.WaitHealthy(t)
	u := nextUpdate(t, updates)
	if u.Err != nil || !u.Full || u.Rev != snap.Rev || !reflect.DeepEqual(shared(u.Config), shared(snap.Config)) {
		t.Errorf("update after the outage: full %v at %d, err %v; want Full at %d with the current document",
			u.Full, u.Rev, u.Err, snap.Rev)
	}
}

// writeBackend adds backend id through s, retrying (a bounded number of
// times) while etcd is unavailable or another write won. A write whose
// answer was lost but which committed is found by the next Load.
func writeBackend(ctx context.Context, s store.Store, id string) error {
	var err error
	for range 40 {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var snap store.Snapshot
		snap, err = s.Load(actx)
		if err == nil {
			if snap.Config.Backend(id) != nil {
				cancel()
				return nil
			}
			_, err = s.CompareAndSwap(actx, snap, withBackend(snap.Config, id))
		}
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrStale) {
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("write %s: %w", id, err)
}

// waitBackend waits for an update holding backend id.
func waitBackend(t *testing.T, updates <-chan store.Update, id string) store.Update {
	t.Helper()
	for {
		if u := nextUpdate(t, updates); u.Err == nil && u.Config.Backend(id) != nil {
			return u
		}
	}
}

// TestEtcdLeaderKilled: writes go on succeeding while the etcd leader is
// killed and another elected; none acknowledged is lost, and a watch
// running across the election sees them all.
func TestEtcdLeaderKilled(t *testing.T) {
	cluster := etcdtest.Start(t, 3)
	s, snap := seedEtcd(t, cluster, "/leader", storetest.Seed())
	ctx := etcdContext(t)
	updates := store.NewEtcd(cluster.Client(t), "/leader", nil).Watch(ctx, snap.Rev)

	var acked []string
	progress := make(chan int)
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(progress)
		for i := 0; ; i++ {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			id := fmt.Sprintf("w%03d", i)
			if err := writeBackend(ctx, s, id); err != nil {
				errc <- err
				return
			}
			acked = append(acked, id)
			select {
			case progress <- len(acked):
			case <-stop:
				errc <- nil
				return
			}
		}
	}()
	waitWrites := func(n int) {
		t.Helper()
		for got := range progress {
			if got >= n {
				return
			}
		}
		t.Fatalf("the writer stopped: %v", <-errc)
	}
	waitWrites(5)
	leader := cluster.Leader(t)
	cluster.Kill(leader)
	waitWrites(20) // at least 15 acknowledged after the kill
	close(stop)
	for range progress {
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	last := acked[len(acked)-1]
	got := waitBackend(t, updates, last)
	for _, id := range acked {
		if got.Config.Backend(id) == nil {
			t.Errorf("backend %s was acknowledged and is not in the watch's state", id)
		}
	}
	t.Logf("%d writes, leader %d killed after the 5th", len(acked), leader)
}

// TestEtcdAllStopped: with every member stopped, Load and CompareAndSwap
// answer ErrUnavailable within their deadline; once the cluster is back, a
// watch that ran through the outage delivers the writes made after it.
func TestEtcdAllStopped(t *testing.T) {
	cluster := etcdtest.Start(t, 3)
	s, snap := seedEtcd(t, cluster, "/stopped", storetest.Seed())
	ctx := etcdContext(t)
	wctx, cancel := context.WithCancel(t.Context()) // the watch lives through the outage
	defer cancel()
	updates := store.NewEtcd(cluster.Client(t), "/stopped", nil).Watch(wctx, snap.Rev)

	start := time.Now()
	cluster.StopAll()
	t.Logf("cluster stopped in %v", time.Since(start))
	const deadline = 2 * time.Second
	check := func(what string, call func(context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		start := time.Now()
		err := call(cctx)
		if took := time.Since(start); !errors.Is(err, store.ErrUnavailable) || took > deadline+time.Second {
			t.Errorf("%s with etcd stopped: %v after %v; want ErrUnavailable within %v", what, err, took, deadline)
		}
	}
	check("Load", func(ctx context.Context) error { _, err := s.Load(ctx); return err })
	check("CompareAndSwap", func(ctx context.Context) error {
		_, err := s.CompareAndSwap(ctx, snap, withBackend(snap.Config, "lost"))
		return err
	})

	stopped := time.Now()
	cluster.StartAll()
	t.Logf("cluster back after %v", time.Since(stopped))
	ctx = etcdContext(t) // a new wait for the write; the watch has its own
	if err := writeBackend(ctx, s, "after"); err != nil {
		t.Fatal(err)
	}
	t.Logf("written after %v", time.Since(stopped))
	u := waitBackend(t, updates, "after")
	t.Logf("watched after %v", time.Since(stopped))
	if u.Config.Backend("lost") != nil {
		t.Error("a write answered ErrUnavailable was stored")
	}
}
