// Package etcdtest starts real etcd clusters for tests: one or three
// member processes on 127.0.0.1, ports chosen at run time, data under the
// test's temporary directory, and methods to kill, stop and restart members
// so that a test can break the cluster the way production breaks it.
//
// A test uses it like this:
//
//	c := etcdtest.Start(t, 3)           // healthy when Start returns
//	cli := c.Client(t)                  // closed when the test ends
//	_, err := cli.Put(ctx, "/k", "v")
//	c.Kill(c.Leader(t))                 // SIGKILL the leader
//	c.WaitHealthy(t)                    // a new leader serves again
//	c.StopAll(); c.StartAll()           // a full restart keeps the data
//
// Give Endpoints to the code under test (they are "127.0.0.1:port", the
// form of fronttier's etcd_endpoints setting). Every process is killed when
// the test ends; when the test failed, the tail of each member's log is
// printed.
//
// The server is the binary built from tools/etcd (its own module, so that
// fronttier's go.mod does not take etcd's server dependencies): $ETCD_BIN,
// else $(go env GOPATH)/bin/etcd, which .ci/run builds, else etcd on PATH.
// When none is found the test fails under CI; elsewhere the package builds
// tools/etcd once into the user cache directory, which takes a few minutes
// the first time.
package etcdtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Timing of the helpers. The raft timing is short so that elections after a
// kill take about a second, yet long enough that a loaded CI machine does
// not lose its leader to a late heartbeat.
const (
	heartbeatMillis = 100
	electionMillis  = 1000
	// healthyTimeout bounds every wait for the cluster (start, leader,
	// health).
	healthyTimeout = 30 * time.Second
	// callTimeout bounds one probe of one member.
	callTimeout = 2 * time.Second
	// pollInterval is the pause between two probes of a wait.
	pollInterval = 50 * time.Millisecond
	// logTailLines is how much of each member's log a failed test prints.
	logTailLines = 40
)

// Cluster is a running etcd cluster of one or three members started by
// Start. Member i is addressed by its index in Endpoints. A Cluster is
// driven by the test that started it: its methods report problems through
// that test and are not safe for concurrent use.
type Cluster struct {
	t       testing.TB
	bin     string
	token   string
	members []*member
}

// Start starts an etcd cluster of members members (1 or 3) and returns it
// once every member answers and agrees on a leader. A start that fails,
// most likely because another process took a port between reservation and
// bind, is retried once with new ports. The processes are killed when the
// test ends.
func Start(t testing.TB, members int) *Cluster {
	t.Helper()
	if members != 1 && members != 3 {
		t.Fatalf("etcdtest.Start: %d members; want 1 or 3", members)
	}
	bin := findBinary(t)
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		var c *Cluster
		c, err = start(t, bin, members)
		if err == nil {
			return c
		}
		if attempt == 1 {
			t.Logf("etcd cluster did not start, retrying with new ports: %v\n%s", err, c.logTails())
		}
		c.killAll()
	}
	t.Fatalf("etcd cluster did not start: %v", err)
	return nil
}

// start makes one attempt at starting a cluster. It returns the cluster
// even on error, so that the caller can show its logs and kill it.
func start(t testing.TB, bin string, n int) (*Cluster, error) {
	dir := t.TempDir()
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{t: t, bin: bin, token: "fronttier-etcdtest-" + rand.Text()}
	for i := range n {
		name := "m" + strconv.Itoa(i)
		c.members = append(c.members, &member{
			name:      name,
			dataDir:   filepath.Join(dir, name),
			logPath:   filepath.Join(dir, name+".log"),
			clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			peerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
		})
	}
	// Registered after t.TempDir, so it runs before the directory is
	// removed: the processes stop writing there first.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd member logs (last %d lines each):\n%s", logTailLines, c.logTails())
		}
		c.killAll()
	})
	for i := range c.members {
		if err := c.startMember(i, "new"); err != nil {
			return c, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthyTimeout)
	defer cancel()
	return c, c.waitHealthy(ctx)
}

// Endpoints returns the client address of each member, "127.0.0.1:port",
// in member order; clientv3 and fronttier's etcd_endpoints accept them.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.endpoint()
	}
	return eps
}

// Client returns a client over all the members' endpoints, closed when the
// test t ends. It logs nothing: failures come back as errors.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints()...)
}

// MemberClient returns a client that talks to member i only, closed when
// the test t ends.
func (c *Cluster) MemberClient(t testing.TB, i int) *clientv3.Client {
	t.Helper()
	return newClient(t, c.member(i).endpoint())
}

// newClient returns a quiet client for endpoints, closed when t ends.
func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: callTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the current leader, waiting (bounded) until
// the running members agree on one. It fails t when they do not, or when a
// member exited on its own.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), healthyTimeout)
	defer cancel()
	var last error
	for {
		if err := c.exited(); err != nil {
			t.Fatalf("etcd cluster: %v", err)
		}
		leader, err := c.probe(ctx)
		if err == nil {
			return leader
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("etcd cluster has no leader after %v: %v", healthyTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// WaitHealthy waits (bounded) until every running member answers a
// linearizable read and all agree on a leader, and fails t when they do not
// or when a member exited on its own.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), healthyTimeout)
	defer cancel()
	if err := c.waitHealthy(ctx); err != nil {
		t.Fatalf("etcd cluster not healthy: %v", err)
	}
}

// waitHealthy polls probe until it succeeds, a member exits on its own or
// ctx ends.
func (c *Cluster) waitHealthy(ctx context.Context) error {
	var last error
	for {
		if err := c.exited(); err != nil {
			return err
		}
		if _, err := c.probe(ctx); err == nil {
			return nil
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %v: %w", healthyTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// probe asks every running member for its status and serves it a
// linearizable read; it returns the index of the leader they all name.
func (c *Cluster) probe(ctx context.Context) (int, error) {
	var leaderID uint64
	running := 0
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		running++
		id, leader, err := m.probe(ctx)
		if err != nil {
			return -1, fmt.Errorf("member %d: %w", i, err)
		}
		if leaderID != 0 && leader != leaderID {
			return -1, fmt.Errorf("members disagree on the leader (%x, %x)", leaderID, leader)
		}
		leaderID = leader
		m.id = id
	}
	if running == 0 {
		return -1, errors.New("no member is running")
	}
	for i, m := range c.members {
		if m.id == leaderID {
			return i, nil
		}
	}
	return -1, fmt.Errorf("leader %x is not a known member", leaderID)
}

// member returns member i, failing the test for an index out of range.
func (c *Cluster) member(i int) *member {
	c.t.Helper()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("etcdtest: member %d of a %d-member cluster", i, len(c.members))
	}
	return c.members[i]
}

// exited returns an error naming the first member whose process ended
// without being stopped.
func (c *Cluster) exited() error {
	for i, m := range c.members {
		if err := m.exited(); err != nil {
			return fmt.Errorf("member %d exited: %w (log %s: %s)", i, err, m.logPath, lastLine(m.logPath))
		}
	}
	return nil
}

// logTails returns the last lines of each member's log.
func (c *Cluster) logTails() string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	for i, m := range c.members {
		fmt.Fprintf(&b, "--- member %d (%s)\n%s\n", i, m.logPath, tail(m.logPath, logTailLines))
	}
	return b.String()
}

// lastLine returns the last line of the file at p.
func lastLine(p string) string { return tail(p, 1) }

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago: all are held open together, then released.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
