package fleetstats_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/fleetstats"
	"fronttier/internal/metrics"
	"fronttier/internal/testutil"
	"fronttier/internal/testutil/etcdtest"
)

// source is a node's counts that a test sets.
type source struct {
	mu   sync.Mutex
	reqs map[string]uint64 // by tag, for every domain
}

func (s *source) set(tag string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reqs == nil {
		s.reqs = map[string]uint64{}
	}
	s.reqs[tag] = n
}

func (s *source) Stats(string) map[string]metrics.TagStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]metrics.TagStats{}
	for tag, n := range s.reqs {
		out[tag] = metrics.TagStats{Requests: n, Errors: n / 10, Latency: []uint64{n}}
	}
	return out
}

// node is one publishing node of a test.
type node struct {
	src   *source
	lease clientv3.LeaseID
	pub   *fleetstats.Publisher
}

func newNode(t *testing.T, cli *clientv3.Client, name string, src *source) *node {
	t.Helper()
	g, err := cli.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{src: src, lease: g.ID}
	n.pub = fleetstats.NewPublisher(fleetstats.PublisherOptions{Client: cli, Prefix: "/ft", Member: name,
		Lease: func() clientv3.LeaseID { return n.lease }, Domains: func() []string { return []string{"x.test"} }, Stats: src})
	return n
}

func (n *node) publish(t *testing.T) {
	t.Helper()
	if err := n.pub.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPublishAndAggregate: nodes publish their counts since they first saw
// the rollout, under their lease, only when changed; the aggregator's
// totals are the fleet's, stay when a node goes, and count a restarted
// node's new process from zero.
func TestPublishAndAggregate(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	cli := etcd.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	s1, s2 := &source{}, &source{}
	s1.set("b", 500) // traffic before the rollout: never counted
	n1, n2 := newNode(t, cli, "edge-1", s1), newNode(t, cli, "edge-2", s2)
	n1.publish(t)
	n2.publish(t)

	agg := fleetstats.NewAggregator(cli, "/ft", nil)
	rev, err := agg.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); agg.Follow(ctx, rev) }()
	defer func() { cancel(); <-done }()
	waitTotal := func(what string, want uint64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := agg.Stats("x.test")["b"]
			if got.Requests == want && got.Errors == want/10 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: fleet total %+v, want %d requests", what, got, want)
			}
			time.Sleep(5 * time.Millisecond) // polling, bounded
		}
	}
	waitTotal("before any traffic", 0)

	s1.set("b", 600)
	s2.set("b", 50)
	n1.publish(t)
	n2.publish(t)
	waitTotal("both nodes' traffic", 150)

	// Unchanged: no write.
	get := func() *clientv3.GetResponse {
		resp, err := cli.Get(ctx, "/ft/stats/edge-1")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get /ft/stats/edge-1: %v %+v", err, resp)
		}
		return resp
	}
	before := get().Kvs[0]
	if clientv3.LeaseID(before.Lease) != n1.lease {
		t.Fatalf("value under lease %x, want the node's %x", before.Lease, n1.lease)
	}
	n1.publish(t)
	if after := get().Kvs[0]; after.ModRevision != before.ModRevision {
		t.Fatalf("an unchanged publish wrote (mod revision %d -> %d)", before.ModRevision, after.ModRevision)
	}

	// edge-2 goes (its lease ends): its value is deleted, its traffic stays.
	if _, err := cli.Revoke(ctx, n2.lease); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, "/ft/stats/edge-2"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("edge-2's value after its lease ended: %v %+v", err, resp)
	}
	s1.set("b", 610)
	n1.publish(t)
	waitTotal("after edge-2 went", 160)

	// edge-2 restarts: a new process, counting from zero again.
	s2 = &source{}
	n2 = newNode(t, cli, "edge-2", s2)
	n2.publish(t)
	s2.set("b", 30)
	n2.publish(t)
	waitTotal("after edge-2 came back", 190)
}

// TestFollowAfterCompaction: a watch from a revision etcd compacted away
// fails; the aggregator reads everything again and goes on, counting
// nothing twice.
func TestFollowAfterCompaction(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	cli := etcd.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &source{}
	n := newNode(t, cli, "edge-1", src)
	n.publish(t)
	log := &testutil.SyncBuffer{}
	agg := fleetstats.NewAggregator(cli, "/ft", slog.New(slog.NewTextHandler(log, nil)))
	rev, err := agg.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.set("b", 40)
	n.publish(t)
	src.set("b", 70)
	n.publish(t)
	resp, err := cli.Get(ctx, "/ft/stats/edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); agg.Follow(ctx, rev) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for agg.Stats("x.test")["b"].Requests != 70 {
		if time.Now().After(deadline) {
			t.Fatalf("fleet total %+v after compaction, want 70 requests", agg.Stats("x.test")["b"])
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded
	}
	if !strings.Contains(log.String(), "watch failed; reading again") {
		t.Errorf("the watch did not fail on the compacted revision; log:\n%s", log.String())
	}
	src.set("b", 75)
	n.publish(t)
	deadline = time.Now().Add(20 * time.Second)
	for agg.Stats("x.test")["b"].Requests != 75 {
		if time.Now().After(deadline) {
			t.Fatalf("fleet total %+v, want 75 requests", agg.Stats("x.test")["b"])
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded
	}
}
