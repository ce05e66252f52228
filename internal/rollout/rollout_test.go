package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/backend"
	"fronttier/internal/clock/clocktest"
	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/state"
	tu "fronttier/internal/testutil"
)

// fakeStats are cumulative per-tag counts that a test adds to.
type fakeStats struct {
	mu   sync.Mutex
	tags map[string]metrics.TagStats
}

func (f *fakeStats) Stats(string) map[string]metrics.TagStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]metrics.TagStats{}
	for k, v := range f.tags {
		v.Latency = append([]uint64(nil), v.Latency...)
		out[k] = v
	}
	return out
}

// add counts n requests of tag, errs of them failed, each taking ms.
func (f *fakeStats) add(tag string, n, errs int, ms float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tags == nil {
		f.tags = map[string]metrics.TagStats{}
	}
	bounds := metrics.LatencyBounds()
	s := f.tags[tag]
	if s.Latency == nil {
		s.Latency = make([]uint64, len(bounds)+1)
	}
	i := 0
	for i < len(bounds) && bounds[i] < ms {
		i++
	}
	s.Latency[i] += uint64(n)
	s.Requests += uint64(n)
	s.Errors += uint64(errs)
	f.tags[tag] = s
}

type fixture struct {
	st    *state.Store
	stats *fakeStats
	clk   *clocktest.Clock
	c     *Controller
	reg   *prometheus.Registry
	log   *tu.SyncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.Proxy.ListenAddrHTTP = "127.0.0.1:80"
	cfg.VirtualHosts = []config.VirtualHost{{Domain: "example.com", EnabledBackendsTag: "a"}}
	cfg.Backends = []config.Backend{
		{ID: "v1", Address: "127.0.0.1:3001", Tags: []string{"a"}},
		{ID: "v2", Address: "127.0.0.1:3002", Tags: []string{"b"}},
	}
	log := &tu.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	st, err := state.New(cfg, backend.NewRegistry(nil, nil), &tu.Persister{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, stats: &fakeStats{}, clk: clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), reg: prometheus.NewRegistry(), log: log}
	f.c = New(Options{Store: st, Stats: f.stats, Clock: f.clk, Log: logger, Reg: f.reg})
	return f
}

func spec() config.Rollout {
	return config.Rollout{ToTag: "b", Steps: []float64{5, 50, 100}, StepSecs: 60, MaxErrorRate: 0.01, MaxP99Ms: 800, MinRequests: 100}
}

func (f *fixture) start(t *testing.T) *config.Rollout {
	t.Helper()
	r, err := f.c.Start("example.com", spec())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// host returns example.com's host in force.
func (f *fixture) host() *config.VirtualHost { return f.st.Config().Host("example.com") }

// loop runs one of the controller's loops (Run, Drive, Notify) until the
// test ends.
func (f *fixture) loop(t *testing.T, run func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// awaitHost waits up to 10 s for the host to satisfy ok (a loop changes it
// on its own goroutine); what names the wait in the failure.
func (f *fixture) awaitHost(t *testing.T, what string, ok func(*config.VirtualHost) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(f.host()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s: %+v", what, f.host().Rollout)
		}
		time.Sleep(time.Millisecond)
	}
}

func rolledBack(v *config.VirtualHost) bool { return v.Rollout.State == config.RolloutRolledBack }

// step moves the clock to the gate and runs it.
func (f *fixture) gate() *config.Rollout {
	f.clk.Advance(60 * time.Second)
	f.c.Tick()
	return f.host().Rollout
}

func TestStartSetsFirstStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.start(t)
	if r.State != config.RolloutRunning || r.Percent != 5 || r.FromTag != "a" || r.Step != 0 {
		t.Fatalf("started rollout = %+v", r)
	}
	if c := f.host().Canary; c == nil || c.Tag != "b" || c.Percent != 5 {
		t.Fatalf("canary = %+v, want b at 5%%", c)
	}
	if want := f.clk.Now().Add(time.Minute); !r.NextStepAt.Equal(want) {
		t.Fatalf("next_step_at = %v, want %v", r.NextStepAt, want)
	}
	if _, err := f.c.Start("example.com", spec()); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("second Start = %v, want ErrConflict", err)
	}
	bad := spec()
	bad.Steps = []float64{50, 25}
	if _, err := f.c.Start("example.com", bad); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Start with falling steps = %v, want ErrInvalid", err)
	}
	bad = spec()
	bad.ToTag = "nowhere"
	f2 := newFixture(t)
	if _, err := f2.c.Start("example.com", bad); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Start to a tag without backends = %v, want ErrConflict", err)
	}
}

func TestGatePassesToNextStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	f.stats.add("a", 1000, 0, 10)
	f.stats.add("b", 200, 1, 20)
	r := f.gate()
	if r.State != config.RolloutRunning || r.Step != 1 || r.Percent != 50 {
		t.Fatalf("after a good gate: %+v", r)
	}
	if c := f.host().Canary; c == nil || c.Percent != 50 {
		t.Fatalf("canary = %+v, want 50%%", c)
	}
	if r.Canary == nil || r.Canary.Requests != 200 || r.Canary.Errors != 1 || r.Baseline.Requests != 1000 {
		t.Fatalf("figures = %+v / %+v", r.Canary, r.Baseline)
	}
}

func TestGateFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		canaryErrs int
		canaryMs   float64
		baseErrs   int
		noBase     bool
		maxErr     float64
		want       string
	}{
		{name: "error rate", canaryErrs: 10, canaryMs: 10, noBase: true, maxErr: 0.01, want: "canary error_rate 0.05 (10 of 200 requests) is above max_error_rate 0.01"},
		{name: "p99", canaryMs: 2000, maxErr: 0.01, want: "canary p99 latency"},
		{name: "vs baseline", canaryErrs: 10, canaryMs: 10, baseErrs: 10, maxErr: 0.01, want: "canary error_rate 0.05 (10 of 200 requests) is worse than the baseline's 0.01 by 0.04, more than max_error_rate 0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			s := spec()
			s.MaxErrorRate = tt.maxErr
			if _, err := f.c.Start("example.com", s); err != nil {
				t.Fatal(err)
			}
			if !tt.noBase {
				f.stats.add("a", 1000, tt.baseErrs, 10)
			}
			f.stats.add("b", 200, tt.canaryErrs, tt.canaryMs)
			r := f.gate()
			if r.State != config.RolloutRolledBack || r.Percent != 0 || !strings.Contains(r.Reason, tt.want) {
				t.Fatalf("after a bad gate: state %s, percent %v, reason %q; want rolled_back with %q", r.State, r.Percent, r.Reason, tt.want)
			}
			if h := f.host(); h.Canary != nil || h.EnabledBackendsTag != "a" {
				t.Fatalf("host after rollback: canary %+v, tag %q", h.Canary, h.EnabledBackendsTag)
			}
		})
	}
}

// TestGateBaselineRelative: a canary at 0.8% beside a baseline at 0.5%,
// with a limit of 1%, passes.
func TestGateBaselineRelative(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	f.stats.add("a", 1000, 5, 10)
	f.stats.add("b", 1000, 8, 10)
	if r := f.gate(); r.State != config.RolloutRunning || r.Step != 1 {
		t.Fatalf("after a gate within limits: %+v", r)
	}
}

func TestGateExtendsOnTooLittleTraffic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	f.stats.add("b", 60, 0, 10)
	r := f.gate()
	if r.State != config.RolloutRunning || r.Step != 0 || !r.NextStepAt.Equal(f.clk.Now().Add(time.Minute)) ||
		!strings.Contains(r.Reason, "too little canary traffic (60 requests, min_requests 100)") {
		t.Fatalf("after a thin gate: %+v", r)
	}
	f.stats.add("b", 60, 0, 10) // the window goes on: 120 in all
	if r := f.gate(); r.Step != 1 || r.Canary.Requests != 120 {
		t.Fatalf("after the extended gate: step %d, canary %+v", r.Step, r.Canary)
	}
}

func TestCompletionSwitchesTag(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	for range 3 {
		f.stats.add("b", 200, 0, 10)
		f.gate()
	}
	h := f.host()
	if h.Rollout.State != config.RolloutCompleted || h.EnabledBackendsTag != "b" || h.Canary != nil || h.Rollout.Percent != 100 {
		t.Fatalf("after the last gate: tag %q, canary %+v, rollout %+v", h.EnabledBackendsTag, h.Canary, h.Rollout)
	}
	if !strings.Contains(f.log.String(), "Switched backend tag") {
		t.Fatalf("log lacks \"Switched backend tag\":\n%s", f.log.String())
	}
	if n := testutil.ToFloat64(f.c.m.transitions.WithLabelValues("example.com", "completed")); n != 1 {
		t.Fatalf("transitions to completed = %v", n)
	}
	if n := testutil.ToFloat64(f.c.m.transitions.WithLabelValues("example.com", "running")); n != 3 {
		t.Fatalf("transitions to running = %v, want 3 (start and two steps)", n)
	}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP proxy_rollout_state 1 for the state of each domain's rollout (running, paused, completed, rolled_back, aborted), 0 for the others; domains without one are absent.
# TYPE proxy_rollout_state gauge
proxy_rollout_state{domain="example.com",state="aborted"} 0
proxy_rollout_state{domain="example.com",state="completed"} 1
proxy_rollout_state{domain="example.com",state="paused"} 0
proxy_rollout_state{domain="example.com",state="rolled_back"} 0
proxy_rollout_state{domain="example.com",state="running"} 0
`), "proxy_rollout_state"); err != nil {
		t.Fatal(err)
	}
}

func TestOperatorActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	r, err := f.c.Pause("example.com")
	if err != nil || r.State != config.RolloutPaused {
		t.Fatalf("Pause = %+v, %v", r, err)
	}
	f.stats.add("b", 500, 100, 10) // a paused rollout is not judged
	if r := f.gate(); r.State != config.RolloutPaused {
		t.Fatalf("a gate ran on a paused rollout: %+v", r)
	}
	if _, err := f.c.Pause("example.com"); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Pause of a paused rollout = %v, want ErrConflict", err)
	}
	if r, err = f.c.Resume("example.com"); err != nil || r.State != config.RolloutRunning || !r.NextStepAt.Equal(f.clk.Now().Add(time.Minute)) {
		t.Fatalf("Resume = %+v, %v", r, err)
	}
	f.stats.add("b", 200, 0, 10) // the window restarted: the failures before do not count
	if r := f.gate(); r.Step != 1 {
		t.Fatalf("after resume and a good gate: %+v", r)
	}
	if r, err = f.c.Promote("example.com"); err != nil || r.State != config.RolloutCompleted || f.host().EnabledBackendsTag != "b" {
		t.Fatalf("Promote = %+v, %v", r, err)
	}
	if _, err := f.c.Abort("example.com"); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Abort of a completed rollout = %v, want ErrConflict", err)
	}

	g := newFixture(t)
	g.start(t)
	if r, err := g.c.Abort("example.com"); err != nil || r.State != config.RolloutAborted || g.host().Canary != nil || g.host().EnabledBackendsTag != "a" {
		t.Fatalf("Abort = %+v, %v; host %+v", r, err, g.host())
	}
	if _, err := g.c.Resume("example.com"); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Resume of an aborted rollout = %v", err)
	}
	if _, err := g.c.Pause("nowhere.example"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Pause of an unknown domain = %v", err)
	}
}

// TestGateNeverOverwritesPause: a gate decided on a running step commits
// only if the rollout is still running at that step; an operator's pause
// made meanwhile wins.
func TestGateNeverOverwritesPause(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.start(t)
	if _, err := f.st.TransitionRollout("example.com", state.RolloutExpect{States: []string{config.RolloutRunning}}, func(v *config.VirtualHost) error {
		v.Rollout.State = config.RolloutPaused
		return nil
	}, true); err != nil {
		t.Fatal(err)
	}
	_, err := f.st.TransitionRollout("example.com", expectAt(r), func(v *config.VirtualHost) error {
		v.Rollout.State = config.RolloutRolledBack
		return nil
	}, true)
	if !errors.Is(err, state.ErrRolloutMoved) || !errors.Is(err, state.ErrConflict) {
		t.Fatalf("a gate's change after a pause = %v, want ErrRolloutMoved", err)
	}
	if got := f.host().Rollout.State; got != config.RolloutPaused {
		t.Fatalf("state = %s, want paused", got)
	}
	// And through the controller: its window is stale, it looks again.
	f.stats.add("b", 500, 100, 10)
	f.clk.Advance(time.Hour)
	f.c.Tick()
	if got := f.host().Rollout.State; got != config.RolloutPaused {
		t.Fatalf("state after a tick = %s, want paused", got)
	}
}

// TestRestartResumes: a controller that did not start the step (a new
// process) restarts its window and then gates it.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	f.stats.add("b", 200, 0, 10)
	f.gate() // step 1, 50%
	c2 := New(Options{Store: f.st, Stats: f.stats, Clock: f.clk})
	f.clk.Advance(10 * time.Second)
	next := c2.Tick()
	r := f.host().Rollout
	if r.Step != 1 || r.State != config.RolloutRunning || !next.Equal(f.clk.Now().Add(time.Minute)) || !strings.Contains(r.Reason, "window restarted") {
		t.Fatalf("after a restart: next %v, rollout %+v", next, r)
	}
	f.stats.add("b", 200, 0, 10)
	f.clk.Advance(time.Minute)
	c2.Tick()
	if r := f.host().Rollout; r.Step != 2 || r.Percent != 100 {
		t.Fatalf("after the resumed gate: %+v", r)
	}
}

// TestRunDrivesGates runs the controller's loop on the fake clock: the
// gate fires when the clock reaches next_step_at.
func TestRunDrivesGates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.loop(t, f.c.Run)
	r := f.start(t)
	f.stats.add("b", 10_000, 1000, 10)
	f.clk.Set(r.NextStepAt) // the alarm (or the start's poke) finds the gate due
	f.awaitHost(t, "rollback", rolledBack)
}

// TestRunFindsRolloutsStartedElsewhere: a rollout written to the state by
// another path (a hand edit, another process) is found by the periodic
// rescan, its window started, and then gated.
func TestRunFindsRolloutsStartedElsewhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.loop(t, f.c.Run)
	start := f.clk.Now()
	f.clk.WaitArmed(t, 10*time.Second, "the rescan", func(at time.Time) bool { return at.Equal(start.Add(RescanEvery)) })
	r := spec()
	r.State, r.Percent, r.StartedAt, r.UpdatedAt, r.NextStepAt = config.RolloutRunning, 5, start, start, start.Add(time.Minute)
	if _, err := f.st.StartRollout("example.com", r, false); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(RescanEvery)
	want := f.clk.Now().Add(time.Minute)
	f.clk.WaitArmed(t, 10*time.Second, "the next rescan", func(at time.Time) bool { return at.Equal(start.Add(2 * RescanEvery)) })
	if got := f.host().Rollout; !got.NextStepAt.Equal(want) || !strings.Contains(got.Reason, "window restarted") {
		t.Fatalf("after the rescan: %+v", got)
	}
	f.stats.add("b", 200, 50, 10)
	f.clk.Set(want)
	f.awaitHost(t, "rollback", rolledBack)
}

// TestSwitchByHandEndsRollout: a switch made by hand during a rollout
// (which clears the canary) ends it as aborted at the next look, instead
// of the gate putting the canary back.
func TestSwitchByHandEndsRollout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t)
	if _, err := f.st.Switch("example.com", "b", false); err != nil {
		t.Fatal(err)
	}
	f.stats.add("b", 200, 0, 10)
	r := f.gate()
	if r.State != config.RolloutAborted || !strings.Contains(r.Reason, `switched to "b"`) {
		t.Fatalf("after a switch by hand: %+v", r)
	}
	if h := f.host(); h.EnabledBackendsTag != "b" || h.Canary != nil {
		t.Fatalf("host: tag %q, canary %+v", h.EnabledBackendsTag, h.Canary)
	}
}

// TestForgetRestartsWindows: a controller that starts driving (a node
// elected to drive a fleet's rollouts) forgets its windows and restarts
// that of a step started before, on counts it was not adding up then.
func TestForgetRestartsWindows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(t) // as a node that does not drive: the window is noted
	f.c.Forget()
	f.loop(t, f.c.Drive)
	f.awaitHost(t, "window restart", func(v *config.VirtualHost) bool { return strings.Contains(v.Rollout.Reason, "window restarted") })
	if r := f.host().Rollout; !strings.Contains(r.Reason, "started on another node of the fleet") {
		t.Fatalf("reason %q does not say why", r.Reason)
	}
}

// TestWebhookURLChanges: a new webhook URL (a reload) receives the
// transitions made after it is set.
func TestWebhookURLChanges(t *testing.T) {
	t.Parallel()
	got := make(chan Event, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		if err := json.NewDecoder(r.Body).Decode(&e); err == nil {
			got <- e
		}
	}))
	defer srv.Close()
	f := newFixture(t)
	f.loop(t, f.c.Notify)
	f.start(t) // no URL yet: nothing is posted
	f.c.SetWebhookURL(srv.URL)
	if _, err := f.c.Pause("example.com"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Event != config.RolloutPaused || e.Domain != "example.com" {
			t.Fatalf("first event posted = %+v, want the pause", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event posted to the new URL within 10s")
	}
}
