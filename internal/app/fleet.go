package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"fronttier/internal/cluster"
	"fronttier/internal/config"
	"fronttier/internal/store"
)

// fleet is this node's part in a fleet sharing its routing state through
// etcd ([cluster] store = "etcd"): the etcd client and store, the node's
// membership, its last-known-good snapshot on local disk, and the fleet's
// metrics.
type fleet struct {
	log      *slog.Logger
	client   *clientv3.Client
	store    *store.Etcd
	member   *cluster.Member
	snapshot string // path of the last-known-good copy

	rev      atomic.Int64          // applied
	save     chan struct{}         // wakes the snapshot writer; capacity 1
	current  func() *config.Config // the configuration in force, once the state exists
	rollouts *fleetRollouts        // set up by newRollouts

	up          prometheus.Gauge
	leader      prometheus.Gauge
	applied     prometheus.Gauge
	conflicts   prometheus.Counter
	propagation prometheus.Histogram
}

// joinFleet connects to etcd and returns the state this node starts
// from: the fleet's, seeded from this node's file when the store is empty
// (exactly once, whichever node comes first); or, when etcd cannot be
// reached, the last-known-good snapshot on local disk. A node with neither
// cannot know the fleet's state and does not start.
func (a *App) joinFleet(local store.Snapshot, reg prometheus.Registerer) (store.Snapshot, error) {
	cfg := local.Config
	cl := cfg.Cluster
	log := a.log.Logger.With("component", "fleet")
	client, err := etcdClient(cl)
	if err != nil {
		return store.Snapshot{}, err
	}
	f := &fleet{log: log, client: client, store: store.NewEtcd(client, cl.EtcdPrefix, cfg),
		snapshot: cl.SnapshotPath, save: make(chan struct{}, 1)}
	if f.snapshot == "" {
		f.snapshot = a.o.ConfigPath + ".fleet-snapshot"
	}
	f.registerMetrics(reg)
	a.fleet = f

	ctx, cancel := context.WithTimeout(context.Background(), secs(cl.EtcdDialTimeoutSecs))
	defer cancel()
	snap, seeded, err := f.store.Seed(ctx, cfg)
	switch {
	case err == nil && seeded:
		f.up.Set(1)
		log.Info("seeded the fleet's state from this node's file", "prefix", cl.EtcdPrefix, "revision", snap.Rev,
			"domains", len(snap.Config.VirtualHosts), "backends", len(snap.Config.Backends))
	case err == nil:
		f.up.Set(1)
		if differs(cfg, snap.Config) {
			log.Warn("this node's file differs from the fleet's state in etcd, which wins (its domains, backends and [health_check] are not used)",
				"file_domains", len(cfg.VirtualHosts), "fleet_domains", len(snap.Config.VirtualHosts),
				"file_backends", len(cfg.Backends), "fleet_backends", len(snap.Config.Backends), "revision", snap.Rev)
		}
		log.Info("joined the fleet", "prefix", cl.EtcdPrefix, "revision", snap.Rev)
	default:
		saved, serr := f.loadSnapshot(cfg)
		if serr != nil {
			return store.Snapshot{}, fmt.Errorf("cluster: etcd %v cannot be reached (%w) and there is no last-known-good snapshot to serve from (%w)",
				cl.EtcdEndpoints, err, serr)
		}
		log.Warn("etcd cannot be reached: serving the last-known-good snapshot; changes are refused until etcd is back",
			"error", err, "snapshot", f.snapshot, "revision", saved.Rev)
		snap = saved
	}
	return snap, nil
}

// etcdClient builds the etcd client of cl: TLS and authentication as set.
// It does not wait for a connection.
func etcdClient(cl *config.Cluster) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:            cl.EtcdEndpoints,
		DialTimeout:          secs(cl.EtcdDialTimeoutSecs),
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(), // its failures reach us as errors, and are logged there
	}
	if cl.EtcdCAFile != "" || cl.EtcdCertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cl.EtcdCAFile != "" {
			pem, err := os.ReadFile(cl.EtcdCAFile)
			if err != nil {
				return nil, fmt.Errorf("cluster.etcd_ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cluster.etcd_ca_file: %s holds no PEM certificate", cl.EtcdCAFile)
			}
		}
		if cl.EtcdCertFile != "" {
			pair, err := tls.LoadX509KeyPair(cl.EtcdCertFile, cl.EtcdKeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster.etcd_cert_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cc.TLS = tc
	}
	if cl.EtcdUsername != "" {
		pw, err := os.ReadFile(cl.EtcdPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd_password_file: %w", err)
		}
		cc.Username, cc.Password = cl.EtcdUsername, strings.TrimSpace(string(pw))
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	return c, nil
}

func (f *fleet) registerMetrics(reg prometheus.Registerer) {
	f.up = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleet_store_up",
		Help: "Whether this node reaches the fleet's etcd (1) or not (0): it then serves the state it has and refuses changes."})
	f.applied = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleet_revision_applied",
		Help: "The fleet state's revision (etcd's) this node has put in force."})
	f.conflicts = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleet_conflicts_retried_total",
		Help: "Changes that lost a race with another writer and were built again on the newer state."})
	f.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fleet_propagation_seconds",
		Help:    "Time from a change's commit in etcd (by the writing node's clock) to its being in force on this node, for changes made on other nodes.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	f.leader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleet_rollout_leader",
		Help: "Whether this node is the one elected to drive the fleet's rollouts' gates (1) or not (0)."})
	reg.MustRegister(f.up, f.applied, f.conflicts, f.propagation, f.leader)
}

// join creates this node's membership, announced by run.
func (f *fleet) join(self cluster.Self) {
	f.member = cluster.NewMember(f.client, f.store.Prefix(), self, cluster.Options{
		Log: f.log,
		Up: func(ok bool) {
			if ok {
				f.up.Set(1)
			} else {
				f.up.Set(0)
			}
		},
	})
	f.member.Applied(f.rev.Load())
	if f.rollouts != nil {
		f.rollouts.join(self, f.member, f.current)
	}
}

// run keeps the node announced and its snapshot saved, and takes its part
// in the rollouts, until ctx ends.
func (f *fleet) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { f.member.Run(ctx) })
	wg.Go(func() { f.saveLoop(ctx) })
	if f.rollouts != nil {
		wg.Go(func() { f.rollouts.run(ctx) })
	}
	wg.Wait()
}

// appliedRev is the state's Applied hook.
func (f *fleet) appliedRev(rev store.Revision) {
	f.rev.Store(int64(rev))
	f.applied.Set(float64(rev))
	if m := f.member; m != nil {
		m.Applied(int64(rev))
	}
	select {
	case f.save <- struct{}{}:
	default:
	}
}

// fleetSnapshot is the last-known-good copy on disk.
type fleetSnapshot struct {
	Revision int64     `json:"revision"`
	SavedAt  time.Time `json:"saved_at"`
	// Document is the fleet's state, as a configuration file (only its
	// [health_check], [[virtual_hosts]] and [[backends]] are used).
	Document string `json:"document"`
}

// saveLoop writes the snapshot after each applied revision (coalesced)
// until ctx ends. cur is read when writing, so a burst of changes costs
// one write.
func (f *fleet) saveLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.save:
		}
		if err := f.saveSnapshot(); err != nil {
			f.log.Warn("cannot save the fleet's last-known-good snapshot", "path", f.snapshot, "error", err)
		}
	}
}

// errNoState: nothing to save before the state exists.
var errNoState = errors.New("no state yet")

// saveSnapshot writes the configuration in force as the last-known-good
// snapshot, atomically.
func (f *fleet) saveSnapshot() error {
	cur := f.current
	if cur == nil {
		return errNoState
	}
	c := cur()
	doc, err := config.Marshal(c)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(fleetSnapshot{Revision: f.rev.Load(), SavedAt: time.Now().UTC(), Document: string(doc)}, "", "  ")
	if err != nil {
		return err
	}
	return config.WriteFileAtomic(f.snapshot, data)
}

// loadSnapshot reads the last-known-good snapshot, merged into local (this
// node's own settings).
func (f *fleet) loadSnapshot(local *config.Config) (store.Snapshot, error) {
	data, err := os.ReadFile(f.snapshot)
	if err != nil {
		return store.Snapshot{}, err
	}
	var s fleetSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot %s: %w", f.snapshot, err)
	}
	doc, err := config.Parse([]byte(s.Document))
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot %s: %w", f.snapshot, err)
	}
	return store.Snapshot{Config: withShared(local, doc), Rev: store.Revision(s.Revision)}, nil
}

// withShared is local with shared's fleet-wide sections.
func withShared(local, shared *config.Config) *config.Config {
	c := local.Clone()
	s := shared.Clone()
	c.HealthCheck, c.VirtualHosts, c.Backends = s.HealthCheck, s.VirtualHosts, s.Backends
	c.Sort()
	return c
}

// differs reports whether two configurations' fleet-wide sections differ.
func differs(a, b *config.Config) bool {
	x, _ := config.Marshal(withShared(config.Default(), a))
	y, _ := config.Marshal(withShared(config.Default(), b))
	return string(x) != string(y)
}

// close releases the etcd client.
func (f *fleet) close() {
	if f != nil && f.client != nil {
		f.client.Close()
	}
}

// clusterInfo adapts the fleet's membership to the API.
type clusterInfo struct {
	info func(context.Context) (clusterView, error)
}

func (c clusterInfo) Info(ctx context.Context) (any, error) { return c.info(ctx) }

// clusterView is GET /api/v1/cluster's answer: the fleet's nodes and the
// one that drives the rollouts ("" while none is elected; on a single node,
// itself).
type clusterView struct {
	cluster.Info
	RolloutLeader string `json:"rollout_leader,omitempty"`
}

// clusterInfo answers GET /api/v1/cluster: the fleet's nodes, or this node
// alone when its file is its store.
func (a *App) clusterInfo(ctx context.Context) (clusterView, error) {
	if a.fleet != nil && a.fleet.member != nil {
		info, err := a.fleet.member.Info(ctx)
		if err != nil {
			return clusterView{}, err
		}
		v := clusterView{Info: info}
		if r := a.fleet.rollouts; r != nil {
			if v.RolloutLeader, err = r.leaderName(ctx); err != nil {
				return clusterView{}, err
			}
		}
		return v, nil
	}
	info, err := cluster.Single{Self: a.self, Start: a.started, Rev: func() int64 { return int64(a.store.Revision()) }}.Info(ctx)
	return clusterView{Info: info, RolloutLeader: a.self.Name}, err
}

// appliedRev is the state's Applied hook.
func (a *App) appliedRev(rev store.Revision) {
	if a.fleet != nil {
		a.fleet.appliedRev(rev)
	}
}

// followed is the state's Followed hook: how long another node's change
// took to reach this one; and, when it may have moved a rollout, the
// controller looks at once (on the node that drives them, this is how it
// learns of a rollout started or moved on another node).
func (a *App) followed(u store.Update) {
	if a.fleet != nil && !u.Written.IsZero() {
		a.fleet.propagation.Observe(max(0, time.Since(u.Written).Seconds()))
	}
	if a.rollouts != nil && touchesRollout(u) {
		a.rollouts.Poke()
	}
}

// retried is the state's Retried hook.
func (a *App) retried() {
	if a.fleet != nil {
		a.fleet.conflicts.Inc()
	}
}

// nodeName is this node's name: [cluster] node_name, else the host name.
func nodeName(cfg *config.Config) string {
	if cfg.Cluster != nil && cfg.Cluster.NodeName != "" {
		return cfg.Cluster.NodeName
	}
	name, _ := os.Hostname()
	return name
}
