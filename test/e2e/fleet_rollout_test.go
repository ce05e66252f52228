package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"

	"fronttier/internal/testutil/etcdtest"
)

// rolloutFleet is a fleet of fronttier nodes edge-1..n on one etcd,
// serving app.test from a1 (tag a), with a canary backend on tag b.
type rolloutFleet struct {
	nodes []*proxyProc
	hook  *webhook
}

// failHeader, on a request, makes the canary backend of
// startRolloutFleet fail it.
const failHeader = "X-Test-Fail"

// startRolloutFleet starts n nodes; the canary backend (tag b) answers
// 200, or 500 (with X-Injected-Failure: 1, as testbackend's -fail-rate) to
// requests carrying failHeader. Each node posts its rollout events to
// the fleet's webhook.
func startRolloutFleet(t *testing.T, n int) *rolloutFleet {
	t.Helper()
	etcd := etcdtest.Start(t, 1)
	a1 := startBackend(t, "a1")
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Id", "b1")
		if r.Header.Get(failHeader) != "" {
			w.Header().Set("X-Injected-Failure", "1")
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, `{"backend_id":"b1"}`)
	}))
	t.Cleanup(canary.Close)
	f := &rolloutFleet{hook: newWebhook(t)}
	seed := conf{Domains: []domainConf{{"app.test", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), {ID: "b1", Addr: strings.TrimPrefix(canary.URL, "http://"), Tags: []string{"b"}}}}
	for i := range n {
		c := fleetConf(t, etcd, fmt.Sprintf("edge-%d", i+1), seed)
		c.Extra += fmt.Sprintf("\n[rollouts]\nwebhook_url = %q\n", f.hook.srv.URL)
		p := newProxy(t, c)
		if i == 0 {
			p.waitLog(t, msgHasPrefix("seeded the fleet's state"), "the seed from edge-1's file")
		}
		f.nodes = append(f.nodes, p)
	}
	for i, p := range f.nodes {
		eventually(t, waitTimeout, func() bool { return p.backendOf(t, "app.test") == "a1" }, fmt.Sprintf("edge-%d serving app.test", i+1))
	}
	return f
}

// leader returns the index of the node that drives the rollouts, as
// GET /api/v1/cluster on via says, once one is elected and is not one of
// not.
func (f *rolloutFleet) leader(t *testing.T, via *proxyProc, not ...int) int {
	t.Helper()
	idx := -1
	eventually(t, rolloutDeadline, func() bool {
		var v struct {
			RolloutLeader string `json:"rollout_leader"`
		}
		via.mustAPI(t, http.StatusOK, http.MethodGet, "/cluster", nil, &v)
		for i := range f.nodes {
			if v.RolloutLeader == fmt.Sprintf("edge-%d", i+1) && !slices.Contains(not, i) {
				idx = i
				return true
			}
		}
		return false
	}, "a rollout leader in /api/v1/cluster")
	return idx
}

// metric returns the value of the sample named (with its labels) in p's
// metrics, "" when absent.
func metric(t *testing.T, p *proxyProc, sample string) string {
	t.Helper()
	_, data, err := p.apiRaw(http.MethodGet, "/metrics", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestFleetRolloutStartedOnAnotherNode: a rollout started through a node
// that does not lead is driven by the leader to completion, on traffic
// sent through every node; the node that made each transition counts it
// and posts the webhook; only the leader reports fleet_rollout_leader 1.
func TestFleetRolloutStartedOnAnotherNode(t *testing.T) {
	t.Parallel()
	f := startRolloutFleet(t, 2)
	lead := f.leader(t, f.nodes[0])
	other := f.nodes[1-lead]
	if got := metric(t, f.nodes[lead], "fleet_rollout_leader"); got != "1" {
		t.Errorf("fleet_rollout_leader on the leader = %q, want 1", got)
	}
	if got := metric(t, other, "fleet_rollout_leader"); got != "0" {
		t.Errorf("fleet_rollout_leader on the other node = %q, want 0", got)
	}
	startRollout(t, other, 10)
	var loads []*rolloutLoad
	for _, p := range f.nodes {
		loads = append(loads, startRolloutLoad(p, 2))
	}
	r := waitRollout(t, other, final)
	for _, l := range loads {
		l.stop(t)
	}
	if r.State != "completed" || r.Percent != 100 {
		t.Fatalf("rollout = %+v, want completed", r)
	}
	var d canaryDomain
	other.mustAPI(t, http.StatusOK, http.MethodGet, "/domains/app.test", nil, &d)
	if d.Canary != nil || d.EnabledBackendsTag != "b" {
		t.Fatalf("domain after completion: %+v", d)
	}
	f.nodes[lead].waitLog(t, msgIs("Rollout step window restarted"), "the leader starting the window of the step started elsewhere")
	if got := metric(t, other, `proxy_rollout_transitions_total{domain="app.test",to="running"}`); got != "1" {
		t.Errorf("transitions to running on the node that started it = %q, want 1 (the start)", got)
	}
	if got := metric(t, f.nodes[lead], `proxy_rollout_transitions_total{domain="app.test",to="completed"}`); got != "1" {
		t.Errorf("transitions to completed on the leader = %q, want 1", got)
	}
	eventually(t, waitTimeout, func() bool { return f.hook.has("started") && f.hook.has("step") && f.hook.has("completed") },
		"the webhook told of the start (by the node that made it), the steps and the completion (by the leader)")
}

// TestFleetRolloutGateCountsEveryNode: the canary fails only the requests
// that come through the nodes that do not lead; the leader's own canary
// traffic is clean. The rollout still rolls back: the gate judged the
// fleet's traffic.
func TestFleetRolloutGateCountsEveryNode(t *testing.T) {
	t.Parallel()
	f := startRolloutFleet(t, 2)
	lead := f.leader(t, f.nodes[0])
	startRollout(t, f.nodes[lead], 20)
	// Most of the traffic goes through the other node: its failures
	// reach the fleet's counts a second late at most, long before three
	// gates could pass on the leader's clean traffic.
	loads := []*rolloutLoad{
		startRolloutLoad(f.nodes[lead], 1),
		startRolloutLoadWith(f.nodes[1-lead], 3, http.Header{failHeader: {"1"}}),
	}
	r := waitRollout(t, f.nodes[lead], final)
	for _, l := range loads {
		l.stop(t)
	}
	if r.State != "rolled_back" || !strings.Contains(r.Reason, "error_rate") || r.Canary.Errors == 0 {
		t.Fatalf("rollout = %+v, want rolled_back for the error rate of the other node's canary traffic", r)
	}
}

// TestFleetRolloutFailover: the leader stops in the middle of a rollout,
// cleanly (it resigns) or killed (its election lease expires); another
// node is elected (GET /api/v1/cluster names it), restarts the step's
// window and drives the rollout to completion.
func TestFleetRolloutFailover(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		stop func(t *testing.T, p *proxyProc)
	}{
		{"stopped", func(t *testing.T, p *proxyProc) {
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t, waitTimeout); code != 0 {
				t.Fatalf("the leader exited %d", code)
			}
		}},
		{"killed", func(t *testing.T, p *proxyProc) { p.kill() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := startRolloutFleet(t, 3)
			lead := f.leader(t, f.nodes[0])
			var rest []*proxyProc
			for i, p := range f.nodes {
				if i != lead {
					rest = append(rest, p)
				}
			}
			// No traffic yet: the rollout waits at its first step.
			startRollout(t, rest[0], 10)
			waitRollout(t, rest[0], func(r rolloutObj) bool { return strings.Contains(r.Reason, "extended") })
			tt.stop(t, f.nodes[lead])
			next := f.leader(t, rest[0], lead)
			if r := getRollout(t, rest[0]); r.State != "running" {
				t.Fatalf("rollout after the leader stopped: %+v, want running", r)
			}
			f.nodes[next].waitLog(t, msgIs("Rollout step window restarted"), "the new leader restarting the step's window")
			var loads []*rolloutLoad
			for _, p := range rest {
				loads = append(loads, startRolloutLoad(p, 2))
			}
			r := waitRollout(t, rest[0], final)
			for _, l := range loads {
				l.stop(t)
			}
			if r.State != "completed" {
				t.Fatalf("rollout after failover = %+v, want completed", r)
			}
		})
	}
}
