package leader_test

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/leader"
	"fronttier/internal/testutil/etcdtest"
)

// candidate is one node campaigning in a test.
type candidate struct {
	name    string
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	leading bool
	terms   int
}

func (c *candidate) isLeading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// TestElection: of two candidates one leads; the other waits; a clean stop
// of the leader hands over at once (the lease's TTL is a minute, so only
// the resignation can explain it); Current names the leader throughout.
func TestElection(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	cli := etcd.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const key = "/ft/elections/rollouts"
	run := func(name string) *candidate {
		c := &candidate{name: name, done: make(chan struct{})}
		cctx, stop := context.WithCancel(ctx)
		c.stop = stop
		go func() {
			defer close(c.done)
			leader.Run(cctx, leader.Options{Client: cli, Key: key, Name: name, TTL: time.Minute,
				Lead: func(lctx context.Context) {
					c.mu.Lock()
					c.leading = true
					c.terms++
					c.mu.Unlock()
					<-lctx.Done()
					c.mu.Lock()
					c.leading = false
					c.mu.Unlock()
				}})
		}()
		return c
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond) // polling, bounded
		}
	}
	current := func() string {
		name, err := leader.Current(ctx, cli, key)
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	if got := current(); got != "" {
		t.Fatalf("leader before any campaign = %q", got)
	}
	a := run("edge-a")
	until("edge-a leads", a.isLeading)
	if got := current(); got != "edge-a" {
		t.Fatalf("Current = %q, want edge-a", got)
	}
	b := run("edge-b")
	defer func() { b.stop(); <-b.done }()
	// b campaigns: its key exists once it is in the queue; it must not lead.
	until("edge-b queued", func() bool {
		resp, err := cli.Get(ctx, key+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	if b.isLeading() || current() != "edge-a" {
		t.Fatalf("edge-b leads beside edge-a")
	}
	a.stop()
	<-a.done
	if a.isLeading() {
		t.Fatal("edge-a still leads after it stopped")
	}
	until("edge-b leads after edge-a stopped", b.isLeading)
	if got := current(); got != "edge-b" {
		t.Fatalf("Current = %q, want edge-b", got)
	}
}

// TestLeadershipLost: when the leader's session lease ends (etcd expired
// it: the node was cut off or stalled), its Lead context ends, and it
// campaigns again and leads anew.
func TestLeadershipLost(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	cli := etcd.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	const key = "/ft/elections/lost"
	terms := make(chan context.Context, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader.Run(ctx, leader.Options{Client: cli, Key: key, Name: "edge-a", Retry: 10 * time.Millisecond,
			Lead: func(lctx context.Context) { terms <- lctx; <-lctx.Done() }})
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) context.Context {
		t.Helper()
		select {
		case lctx := <-terms:
			return lctx
		case <-time.After(20 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
			return nil
		}
	}
	first := next("the first term")
	resp, err := cli.Get(ctx, key+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("election keys: %v %+v", err, resp)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the term did not end when its lease did")
	}
	if second := next("a second term"); second.Err() != nil {
		t.Fatal("the second term's context is done already")
	}
}
