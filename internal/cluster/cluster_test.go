package cluster_test

import (
	"context"
	"testing"
	"time"

	"fronttier/internal/cluster"
	"fronttier/internal/testutil/etcdtest"
)

// TestMembership: nodes announce themselves with their applied revision;
// a node that stops withdraws at once, and one whose process dies (its
// lease no longer kept) leaves the list when the lease expires.
func TestMembership(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := func(name string, ttl time.Duration) (*cluster.Member, context.CancelFunc, chan struct{}) {
		m := cluster.NewMember(etcd.Client(t), "/ft", cluster.Self{Name: name, APIAddr: "127.0.0.1:9090", Version: "test"},
			cluster.Options{TTL: ttl})
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); m.Run(mctx) }()
		return m, stop, done
	}
	a, stopA, doneA := run("edge-a", 3*time.Second)
	_, stopB, doneB := run("edge-b", 3*time.Second)
	defer func() { stopB(); <-doneB }()
	a.Applied(42)

	until := func(what string, cond func(cluster.Info) bool) cluster.Info {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			info, err := a.Info(ctx)
			if err == nil && cond(info) {
				return info
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; last %+v, %v", what, info, err)
			}
			time.Sleep(20 * time.Millisecond) // polling, bounded
		}
	}
	info := until("both nodes, edge-a at revision 42", func(i cluster.Info) bool {
		return len(i.Nodes) == 2 && i.Nodes[0].Name == "edge-a" && i.Nodes[0].Revision == 42 && i.Nodes[1].Name == "edge-b"
	})
	if info.Store != "etcd" || info.Revision != 42 || info.Nodes[0].LastSeen.IsZero() {
		t.Errorf("info %+v", info)
	}
	stopA()
	<-doneA
	until("edge-a withdrawn", func(i cluster.Info) bool { return len(i.Nodes) == 1 && i.Nodes[0].Name == "edge-b" })
}
