// Package rollout drives rollouts: it raises a canary's share step by
// step, and at the end of each step a gate compares the canary's own
// traffic in that step (per-tag counts from internal/metrics) with the
// rollout's limits and with the baseline's; it moves on, extends the step
// when there was too little traffic to judge, or rolls back at once. Every
// change is a typed state change (state.StartRollout,
// state.TransitionRollout) with a precondition, written durably before it
// takes effect, so a gate's decision cannot overwrite an operator's pause
// made meanwhile and a restart goes on from the stored step.
//
// The controller keeps only the start of each running step's window in
// memory (the counts at the step's start): after a restart, or for a step
// it did not start while driving, it restarts the window and says so in
// the reason.
//
// In a fleet every node's controller makes the operators' changes (they
// are typed changes with preconditions on the shared store), and one
// elected node drives the gates (Drive), on the fleet's counts
// (internal/fleetstats); the node that makes a transition counts it and
// posts the webhook (Notify runs on every node).
package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/clock"
	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/state"
)

// Store is the state the controller reads and changes.
type Store interface {
	Config() *config.Config
	StartRollout(domain string, r config.Rollout, force bool) (config.VirtualHost, error)
	TransitionRollout(domain string, expect state.RolloutExpect, edit func(v *config.VirtualHost) error, force bool) (config.VirtualHost, error)
}

var _ Store = (*state.Store)(nil)

// Stats gives a domain's cumulative counts per tag (metrics.Metrics).
type Stats interface {
	Stats(domain string) map[string]metrics.TagStats
}

// Options configures a Controller. Store and Stats are required.
type Options struct {
	Store Store
	Stats Stats
	Clock clock.Clock           // nil: the system clock
	Log   *slog.Logger          // nil: discard
	Reg   prometheus.Registerer // nil: no metrics
	// WebhookURL, when set, receives each transition as a JSON POST;
	// SetWebhookURL changes it.
	WebhookURL string
	// Client posts to the webhook; nil: one with WebhookTimeout.
	Client *http.Client
}

// WebhookTimeout bounds each webhook POST.
const WebhookTimeout = 5 * time.Second

// RescanEvery is how often Run looks at the configuration in force even
// when no gate is due, to find rollouts it was not told of (a hand edit
// of the file, a change made through another process).
const RescanEvery = 10 * time.Second

// retryAfter is how long a gate whose change failed (the store could not
// be written) waits before it tries again.
const retryAfter = time.Second

// Controller drives the node's running rollouts and makes the operators'
// changes (Start, Pause, Resume, Promote, Abort). mu serialises both, so
// each sees the other's changes; the store's preconditions guard against
// changes made elsewhere (another node, a hand edit).
type Controller struct {
	o     Options
	log   *slog.Logger
	clock clock.Clock
	poke  chan struct{}          // buffered 1: look again now
	hooks chan hook              // webhook posts, sent by Notify
	url   atomic.Pointer[string] // the webhook's URL in force; "" for none
	m     *collectors            // nil without a registry

	mu      sync.Mutex
	windows map[string]window    // guarded by mu: by domain, the running step's window
	retry   map[string]time.Time // guarded by mu: by domain, when a failed change is tried again
}

// window is the start of a running step's window: the counts of both tags
// when it began, and the step and gate time it belongs to.
type window struct {
	step         int
	next         time.Time
	canary, base metrics.TagStats
}

// New returns a controller; Run (or Drive and Notify) drives it.
func New(o Options) *Controller {
	c := &Controller{o: o, log: o.Log, clock: o.Clock, poke: make(chan struct{}, 1), hooks: make(chan hook, 64),
		windows: map[string]window{}, retry: map[string]time.Time{}}
	c.SetWebhookURL(o.WebhookURL)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "rollout")
	if c.clock == nil {
		c.clock = clock.System{}
	}
	if c.o.Client == nil {
		c.o.Client = &http.Client{Timeout: WebhookTimeout}
	}
	if o.Reg != nil {
		c.m = newCollectors(o.Reg, o.Store)
	}
	return c
}

// now is the clock's time as stored: UTC, to the millisecond.
func (c *Controller) now() time.Time { return c.clock.Now().UTC().Truncate(time.Millisecond) }

// Run drives the running rollouts and sends the webhook's posts until ctx
// ends: Drive and Notify together, as a single node runs them.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.Notify(ctx) })
	c.Drive(ctx)
}

// Drive runs the running rollouts' gates until ctx ends: at each one's
// next_step_at its gate decides; at least every RescanEvery, and when
// poked, it looks for rollouts started elsewhere. In a fleet only the
// elected node drives, for as long as it leads (see Forget).
func (c *Controller) Drive(ctx context.Context) {
	alarm := c.clock.Alarm()
	defer alarm.Stop()
	for {
		next := c.Tick()
		if rescan := c.clock.Now().Add(RescanEvery); next.IsZero() || rescan.Before(next) {
			next = rescan
		}
		alarm.Set(next)
		select {
		case <-ctx.Done():
			return
		case <-alarm.C():
		case <-c.poke:
		}
	}
}

// Forget drops the windows the controller knows: each running step's
// window restarts at the next look (see restartWindow). A node elected to
// drive a fleet's rollouts calls it before Drive: windows noted while it
// did not drive are on counts it was not adding up.
func (c *Controller) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.windows)
}

// Poke makes Drive look at the rollouts again now (after a change made
// elsewhere); without a Drive running, the next one looks at once.
func (c *Controller) Poke() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Tick runs the gates that are due and returns when the next is (zero
// when no rollout is running). Run calls it; tests call it directly.
func (c *Controller) Tick() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var earliest time.Time
	seen := map[string]bool{}
	for _, v := range c.o.Store.Config().VirtualHosts {
		r := v.Rollout
		if r == nil || r.State != config.RolloutRunning {
			continue
		}
		seen[v.Domain] = true
		if at, ok := c.retry[v.Domain]; ok && now.Before(at) {
			earliest = earlier(earliest, at)
			continue
		}
		delete(c.retry, v.Domain)
		w, ok := c.windows[v.Domain]
		if v.EnabledBackendsTag != r.FromTag {
			// Switched by hand meanwhile: the rollout has nothing left to do.
			reason := fmt.Sprintf("aborted: enabled_backends_tag was switched to %q meanwhile (the rollout was from %q)", v.EnabledBackendsTag, r.FromTag)
			r = c.orFail(v.Domain, "abort", now)(c.end(v.Domain, expectAt(r), config.RolloutAborted, reason, nil, now))
		} else if !ok || w.step != r.Step || !w.next.Equal(r.NextStepAt) {
			r = c.restartWindow(v.Domain, r, now)
		} else if !now.Before(r.NextStepAt) {
			r = c.gate(v.Domain, r, w, now)
		}
		if at, ok := c.retry[v.Domain]; ok {
			earliest = earlier(earliest, at)
		} else if r != nil && r.State == config.RolloutRunning {
			earliest = earlier(earliest, r.NextStepAt)
		}
	}
	for d := range c.windows {
		if !seen[d] {
			delete(c.windows, d)
		}
	}
	return earliest
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// snapshot starts domain's window for the rollout r as it is now.
func (c *Controller) snapshotLocked(domain string, r *config.Rollout) {
	s := c.o.Stats.Stats(domain)
	c.windows[domain] = window{step: r.Step, next: r.NextStepAt, canary: s[r.ToTag], base: s[r.FromTag]}
}

// restartWindow starts a new window for a running step this controller
// did not start while driving (after a restart; in a fleet, a step
// started on another node, or before this node was elected): its gate
// moves to a full step from now.
func (c *Controller) restartWindow(domain string, r *config.Rollout, now time.Time) *config.Rollout {
	next := now.Add(stepDur(r))
	reason := fmt.Sprintf("step %d (%v%%) window restarted at %s (the node driving the rollouts had not seen it start: "+
		"it started on another node of the fleet, or before a restart or a change of leader); gate at %s",
		r.Step, r.Percent, now.Format(time.RFC3339), next.Format(time.RFC3339))
	nr, err := c.transition(domain, expectAt(r), func(v *config.VirtualHost) {
		v.Rollout.NextStepAt, v.Rollout.Reason = next, reason
	}, true, now)
	if err != nil {
		c.failed(domain, "restart the step window", err, now)
		return nil
	}
	c.log.Info("Rollout step window restarted", "domain", domain, "step", nr.Step, "percent", nr.Percent, "next_step_at", nr.NextStepAt)
	c.snapshotLocked(domain, nr)
	return nr
}

// stepDur is a step's length.
func stepDur(r *config.Rollout) time.Duration { return time.Duration(r.StepSecs) * time.Second }

// expectAt is the precondition of a gate's decision on r: still running,
// at the same step and gate time.
func expectAt(r *config.Rollout) state.RolloutExpect {
	return state.RolloutExpect{States: []string{config.RolloutRunning}, Match: true, Step: r.Step, NextStepAt: r.NextStepAt}
}

// transition applies edit to domain's rollout (a copy of the host's own)
// when expect holds, stamping updated_at, and returns the rollout as
// stored.
func (c *Controller) transition(domain string, expect state.RolloutExpect, edit func(v *config.VirtualHost), force bool, now time.Time) (*config.Rollout, error) {
	v, err := c.o.Store.TransitionRollout(domain, expect, func(v *config.VirtualHost) error {
		edit(v)
		v.Rollout.UpdatedAt = now
		return nil
	}, force)
	if err != nil {
		return nil, err
	}
	return v.Rollout, nil
}

// failed notes a change the controller could not make: one overtaken
// (ErrRolloutMoved) is looked at again at once; others are retried after
// retryAfter.
func (c *Controller) failed(domain, what string, err error, now time.Time) {
	if errors.Is(err, state.ErrRolloutMoved) || errors.Is(err, state.ErrNotFound) {
		delete(c.windows, domain)
		c.log.Info("Rollout changed meanwhile; looking again", "domain", domain, "action", what, "error", err)
		return
	}
	c.log.Error("Rollout change failed; retrying", "domain", domain, "action", what, "error", err, "retry_in", retryAfter)
	c.retry[domain] = now.Add(retryAfter)
}
