package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// stopTimeout bounds how long Stop waits for a member to exit after
// SIGTERM before it kills it.
const stopTimeout = 10 * time.Second

// member is one etcd process of a Cluster and what survives its restarts:
// name, data directory, log file and URLs.
type member struct {
	name      string
	dataDir   string
	logPath   string
	clientURL string
	peerURL   string

	// proc is the running process, nil while the member is stopped.
	proc *process
	// id is the raft member id, learned from the first status answer; zero
	// until then.
	id uint64
	// cli is the client probes use, made on first use and closed by
	// Cluster.killAll.
	cli *clientv3.Client
}

// process is one run of a member's etcd binary. done is closed when
// cmd.Wait returned; err is its result, readable after done.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// endpoint returns the member's client address as "127.0.0.1:port".
func (m *member) endpoint() string { return strings.TrimPrefix(m.clientURL, "http://") }

// running reports whether the member has a process that has not been
// stopped (it may have exited on its own; see exited).
func (m *member) running() bool { return m.proc != nil }

// exited returns why the member's process ended when it ended without
// being stopped, nil otherwise.
func (m *member) exited() error {
	if m.proc == nil {
		return nil
	}
	select {
	case <-m.proc.done:
		if m.proc.err == nil {
			return errors.New("exit status 0")
		}
		return m.proc.err
	default:
		return nil
	}
}

// args returns the etcd flags of member i: the same on every run but for
// the initial cluster state ("new" or "existing").
func (c *Cluster) args(i int, state string) []string {
	m := c.members[i]
	peers := make([]string, len(c.members))
	for j, p := range c.members {
		peers[j] = p.name + "=" + p.peerURL
	}
	return []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", strings.Join(peers, ","),
		"--initial-cluster-token", c.token,
		"--initial-cluster-state", state,
		"--heartbeat-interval", strconv.Itoa(heartbeatMillis),
		"--election-timeout", strconv.Itoa(electionMillis),
		"--logger", "zap",
		"--log-level", "warn",
		"--log-outputs", "stderr",
		// A killed process loses nothing the kernel already has, and tests
		// never crash the machine: skipping fsync keeps a loaded CI
		// machine's disk out of the election timing.
		"--unsafe-no-fsync",
	}
}

// startMember starts member i's process with its log appended to its log
// file, and a goroutine that waits for it to exit; that goroutine ends when
// the process does, which killAll ensures at the test's end.
func (c *Cluster) startMember(i int, state string) error {
	m := c.members[i]
	if m.proc != nil {
		return fmt.Errorf("start member %d: already running", i)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start member %d: %w", i, err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== etcdtest: starting %s (state %s) at %s\n", m.name, state, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, c.args(i, state)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start member %d: %w", i, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p
	return nil
}

// signal sends sig to member i's process, if it runs, and waits until it
// exited; after timeout (when non-zero) it kills the process instead.
func (c *Cluster) signal(i int, sig os.Signal, timeout time.Duration) {
	m := c.members[i]
	p := m.proc
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig) // fails only when it already exited
	var expired <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		expired = tm.C
	}
	select {
	case <-p.done:
	case <-expired:
		c.t.Logf("etcd member %d did not stop within %v of %v; killing it", i, timeout, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	m.proc = nil
}

// Kill kills member i with SIGKILL, as a crash would, and waits until it is
// gone. Killing a stopped member does nothing.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.member(i)
	c.signal(i, syscall.SIGKILL, 0)
}

// Stop stops member i with SIGTERM and waits until it exited (killing it
// if it takes more than 10 s). Stopping a stopped member does nothing.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.member(i)
	c.signal(i, syscall.SIGTERM, stopTimeout)
}

// Restart starts member i again with its data directory and flags, as a
// member of the existing cluster, stopping it first if it runs. It does not
// wait: call WaitHealthy when the test needs the member serving (a lone
// member of three cannot serve until a second one runs).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	if err := c.startMember(i, "existing"); err != nil {
		c.t.Fatal(err)
	}
}

// StopAll stops every running member with SIGTERM, one after another.
func (c *Cluster) StopAll() {
	c.t.Helper()
	for i := range c.members {
		c.Stop(i)
	}
}

// StartAll starts every stopped member again and waits until the cluster
// is healthy.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for i, m := range c.members {
		if m.proc == nil {
			if err := c.startMember(i, "existing"); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	c.WaitHealthy(c.t)
}

// killAll kills every member's process and closes the probe clients. It
// is the cluster's cleanup, and safe to call more than once.
func (c *Cluster) killAll() {
	if c == nil {
		return
	}
	for i, m := range c.members {
		c.signal(i, syscall.SIGKILL, 0)
		if m.cli != nil {
			m.cli.Close()
			m.cli = nil
		}
	}
}

// probe asks the member for its status and serves it a linearizable read
// with a bounded wait each; it returns the member's id and the leader it
// names.
func (m *member) probe(ctx context.Context) (id, leader uint64, err error) {
	if m.cli == nil {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{m.endpoint()},
			DialTimeout: callTimeout,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return 0, 0, err
		}
		m.cli = cli
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	st, err := m.cli.Status(ctx, m.endpoint())
	if err != nil {
		return 0, 0, fmt.Errorf("status: %w", err)
	}
	if len(st.Errors) > 0 {
		return 0, 0, fmt.Errorf("status: %s", strings.Join(st.Errors, "; "))
	}
	if st.Leader == 0 {
		return 0, 0, errors.New("no leader")
	}
	if _, err := m.cli.Get(ctx, "etcdtest-health"); err != nil {
		return 0, 0, fmt.Errorf("linearizable read: %w", err)
	}
	return st.Header.MemberId, st.Leader, nil
}

// childEnv is the test's environment without ETCD_* variables, which etcd
// would read as flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}
