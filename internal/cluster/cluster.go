// Package cluster is a node's membership of its fleet: each node announces
// itself under an etcd lease ({prefix}/nodes/{name}: its API address,
// version, the state revision it has applied and when it was last seen), so
// that any node can answer GET /api/v1/cluster with the whole fleet, and a
// node that dies leaves the list when its lease expires. A single node
// (the file store) reports itself alone.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Node is one member of the fleet as the API shows it.
type Node struct {
	Name      string    `json:"name"`
	APIAddr   string    `json:"api_addr"`
	Version   string    `json:"version"`
	Revision  int64     `json:"revision"` // the state revision it has applied
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"` // when it last announced itself
}

// Info is GET /api/v1/cluster's answer.
type Info struct {
	Store    string `json:"store"`    // "file" or "etcd"
	Revision int64  `json:"revision"` // this node's applied revision
	Nodes    []Node `json:"nodes"`    // sorted by name
}

// Self describes this node.
type Self struct {
	Name, APIAddr, Version string
}

// Options tunes a Member.
type Options struct {
	// TTL is the lease's: a node that stops announcing itself leaves the
	// list this long after; default 10s. It announces itself every TTL/3.
	TTL time.Duration
	Log *slog.Logger
	// Up, if set, is told whether each announcement reached etcd.
	Up func(bool)
}

// Member keeps this node announced in the fleet until its Run ends.
type Member struct {
	c      *clientv3.Client
	prefix string
	self   Self
	o      Options
	start  time.Time

	rev     atomic.Int64  // applied revision
	changed chan struct{} // wakes Run when rev changed; capacity 1

	mu    sync.Mutex // guards lease
	lease clientv3.LeaseID
}

// NewMember returns the membership of self under prefix ("/fronttier").
func NewMember(c *clientv3.Client, prefix string, self Self, o Options) *Member {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Member{c: c, prefix: prefix, self: self, o: o, start: time.Now().UTC(), changed: make(chan struct{}, 1)}
}

// Applied records the state revision this node has put in force; it is
// announced at once (coalesced).
func (m *Member) Applied(rev int64) {
	if m.rev.Swap(rev) != rev {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

func (m *Member) key(name string) string { return m.prefix + "/nodes/" + name }

// Run announces the node until ctx ends, then withdraws it (revokes its
// lease). While etcd cannot be reached it keeps trying; the node is then
// absent from the list, which is what the fleet can know of it.
func (m *Member) Run(ctx context.Context) {
	every := m.o.TTL / 3
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.withdraw()
			return
		case <-t.C:
		case <-m.changed:
		}
		err := m.announce(ctx)
		if ctx.Err() != nil {
			continue
		}
		if m.o.Up != nil {
			m.o.Up(err == nil)
		}
		if err != nil {
			m.o.Log.Debug("cannot announce this node to the fleet", "error", err)
		}
		t.Reset(every)
	}
}

// announce writes this node's entry under its lease, granting a new lease
// when it has none or the old one expired.
func (m *Member) announce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.o.TTL/3)
	defer cancel()
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease != 0 {
		if _, err := m.c.KeepAliveOnce(ctx, lease); err != nil {
			lease = 0 // expired while etcd was away: take a new one
		}
	}
	if lease == 0 {
		g, err := m.c.Grant(ctx, int64((m.o.TTL+time.Second-1)/time.Second))
		if err != nil {
			return fmt.Errorf("grant lease: %w", err)
		}
		lease = g.ID
		m.mu.Lock()
		m.lease = lease
		m.mu.Unlock()
	}
	n := Node{Name: m.self.Name, APIAddr: m.self.APIAddr, Version: m.self.Version,
		Revision: m.rev.Load(), StartedAt: m.start, LastSeen: time.Now().UTC()}
	data, _ := json.Marshal(n)
	if _, err := m.c.Put(ctx, m.key(m.self.Name), string(data), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("put %s: %w", m.key(m.self.Name), err)
	}
	return nil
}

// Lease returns the node's current lease (0 while it has none): what else
// the node writes to etcd that must go with it (its rollout stats) is
// attached to it.
func (m *Member) Lease() clientv3.LeaseID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// withdraw revokes the lease: the node leaves the list at once.
func (m *Member) withdraw() {
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.c.Revoke(ctx, lease)
}

// Info lists the fleet: every node whose lease is alive.
func (m *Member) Info(ctx context.Context) (Info, error) {
	resp, err := m.c.Get(ctx, m.prefix+"/nodes/", clientv3.WithPrefix())
	if err != nil {
		return Info{}, fmt.Errorf("list the fleet's nodes: %w", err)
	}
	info := Info{Store: "etcd", Revision: m.rev.Load(), Nodes: []Node{}}
	for _, kv := range resp.Kvs {
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			continue // not ours to read: skip rather than fail the list
		}
		info.Nodes = append(info.Nodes, n)
	}
	sort.Slice(info.Nodes, func(i, j int) bool { return info.Nodes[i].Name < info.Nodes[j].Name })
	return info, nil
}

// Single is the membership of a node whose file is its store: the fleet is
// itself.
type Single struct {
	Self  Self
	Start time.Time
	Rev   func() int64
}

// Info reports this node alone.
func (s Single) Info(context.Context) (Info, error) {
	rev := s.Rev()
	now := time.Now().UTC()
	return Info{Store: "file", Revision: rev, Nodes: []Node{{Name: s.Self.Name, APIAddr: s.Self.APIAddr,
		Version: s.Self.Version, Revision: rev, StartedAt: s.Start, LastSeen: now}}}, nil
}
