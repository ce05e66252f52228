package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPutReadAcrossMembers: a three-member cluster starts, and a value put
// through one member is read through another.
func TestPutReadAcrossMembers(t *testing.T) {
	t.Parallel()
	c := Start(t, 3)
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("Endpoints: %d, want 3", got)
	}
	ctx := testContext(t)
	if _, err := c.MemberClient(t, 0).Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put via member 0: %v", err)
	}
	resp, err := c.MemberClient(t, 2).Get(ctx, "/k")
	if err != nil {
		t.Fatalf("get via member 2: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get via member 2: %v, want /k=v", resp.Kvs)
	}
}

// TestKillLeader: after the leader is killed, the two others elect a new
// one and writes succeed again; the killed member rejoins and catches up.
func TestKillLeader(t *testing.T) {
	t.Parallel()
	c := Start(t, 3)
	cli := c.Client(t)
	ctx := testContext(t)
	old := c.Leader(t)
	c.Kill(old)
	if got := c.Leader(t); got == old {
		t.Fatalf("leader after killing member %d is still %d", old, got)
	}
	putEventually(ctx, t, cli, "/after-kill", "v")

	c.Restart(old)
	c.WaitHealthy(t)
	resp, err := c.MemberClient(t, old).Get(ctx, "/after-kill")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("restarted member %d: get = %v, %v; want the value put while it was down", old, resp, err)
	}
}

// TestStopAllStartAll: a full stop and start keeps the data.
func TestStopAllStartAll(t *testing.T) {
	t.Parallel()
	c := Start(t, 3)
	ctx := testContext(t)
	if _, err := c.Client(t).Put(ctx, "/durable", "yes"); err != nil {
		t.Fatal(err)
	}
	c.StopAll()
	c.StartAll()
	resp, err := c.Client(t).Get(ctx, "/durable")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
		t.Fatalf("after StopAll/StartAll: %v, want /durable=yes", resp.Kvs)
	}
}

// TestSingleMember: a one-member cluster serves and is its own leader.
func TestSingleMember(t *testing.T) {
	t.Parallel()
	c := Start(t, 1)
	if got := c.Leader(t); got != 0 {
		t.Fatalf("Leader = %d, want 0", got)
	}
	if _, err := c.Client(t).Put(testContext(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
}

// testContext returns a context that ends with the test, bounded to 30 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// putEventually retries a put with a short timeout each until it succeeds
// or ctx ends: the client may first try the dead member.
func putEventually(ctx context.Context, t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = cli.Put(pctx, key, val)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("put %s never succeeded: %v", key, err)
}
