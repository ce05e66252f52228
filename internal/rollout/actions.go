package rollout

import (
	"fmt"
	"slices"
	"time"

	"fronttier/internal/config"
	"fronttier/internal/state"
)

// Start starts a rollout of domain to spec.ToTag at its first step, from
// the host's enabled_backends_tag. Of spec only what an operator sets is
// used: to_tag, steps, step_secs, max_error_rate, max_p99_ms and
// min_requests. Errors: state.ErrInvalid for a bad
// spec, state.ErrConflict when a rollout is active or the tag has no
// healthy backend, state.ErrNotFound for an unknown domain.
func (c *Controller) Start(domain string, spec config.Rollout) (*config.Rollout, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r := config.Rollout{
		ToTag: spec.ToTag, Steps: slices.Clone(spec.Steps), StepSecs: spec.StepSecs,
		MaxErrorRate: spec.MaxErrorRate, MaxP99Ms: spec.MaxP99Ms, MinRequests: spec.MinRequests,
		State: config.RolloutRunning, StartedAt: now, UpdatedAt: now,
	}
	if len(r.Steps) > 0 {
		r.Percent = r.Steps[0]
	}
	r.NextStepAt = now.Add(stepDur(&r))
	r.Reason = fmt.Sprintf("started: step 0 at %v%%", r.Percent)
	v, err := c.o.Store.StartRollout(domain, r, false)
	if err != nil {
		return nil, fmt.Errorf("start rollout of %s: %w", domain, err)
	}
	delete(c.retry, v.Domain)
	c.snapshotLocked(v.Domain, v.Rollout)
	c.record(v.Domain, "started", v.Rollout)
	c.Poke()
	return v.Rollout, nil
}

// Pause holds domain's running rollout at its step: no gate runs, the
// canary keeps its share. An operator may set the share by hand
// meanwhile (the API allows it for the rollout's to_tag only); Resume puts
// the step's back.
func (c *Controller) Pause(domain string) (*config.Rollout, error) {
	return c.act(domain, "pause", []string{config.RolloutRunning}, func(now time.Time, v *config.VirtualHost) {
		v.Rollout.State, v.Rollout.NextStepAt = config.RolloutPaused, time.Time{}
		v.Rollout.Reason = fmt.Sprintf("paused by an operator at step %d (%v%%)", v.Rollout.Step, v.Rollout.Percent)
	})
}

// Resume runs domain's paused rollout again; its step's window starts
// anew, a full step before the gate, and the canary is the step's again
// (an operator may have set it by hand while paused). Refused with
// state.ErrConflict when that raises the share of a tag without a healthy
// backend.
func (c *Controller) Resume(domain string) (*config.Rollout, error) {
	return c.act(domain, "resume", []string{config.RolloutPaused}, func(now time.Time, v *config.VirtualHost) {
		v.Canary = &config.Canary{Tag: v.Rollout.ToTag, Percent: v.Rollout.Percent}
		v.Rollout.State, v.Rollout.NextStepAt = config.RolloutRunning, now.Add(stepDur(v.Rollout))
		v.Rollout.Reason = fmt.Sprintf("resumed by an operator at step %d (%v%%); the step starts anew", v.Rollout.Step, v.Rollout.Percent)
	})
}

// Promote completes domain's running or paused rollout at once: to_tag
// gets all the traffic and becomes enabled_backends_tag.
func (c *Controller) Promote(domain string) (*config.Rollout, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	expect := state.RolloutExpect{States: []string{config.RolloutRunning, config.RolloutPaused}}
	r, err := c.complete(domain, expect, "promoted by an operator: straight to 100%; completed", nil, now)
	if err != nil {
		return nil, fmt.Errorf("promote rollout of %s: %w", domain, err)
	}
	return r, nil
}

// Abort stops domain's running or paused rollout: the canary is cleared,
// all traffic goes back to from_tag.
func (c *Controller) Abort(domain string) (*config.Rollout, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	expect := state.RolloutExpect{States: []string{config.RolloutRunning, config.RolloutPaused}}
	r, err := c.end(domain, expect, config.RolloutAborted, "aborted by an operator: all traffic back on from_tag", nil, now)
	if err != nil {
		return nil, fmt.Errorf("abort rollout of %s: %w", domain, err)
	}
	return r, nil
}

// act makes an operator's transition of domain's rollout from one of
// states.
func (c *Controller) act(domain, what string, states []string, edit func(now time.Time, v *config.VirtualHost)) (*config.Rollout, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r, err := c.transition(domain, state.RolloutExpect{States: states}, func(v *config.VirtualHost) { edit(now, v) }, false, now)
	if err != nil {
		return nil, fmt.Errorf("%s rollout of %s: %w", what, domain, err)
	}
	domain = config.NormaliseDomain(domain)
	delete(c.windows, domain)
	delete(c.retry, domain)
	if r.State == config.RolloutRunning {
		c.snapshotLocked(domain, r)
	}
	c.record(domain, r.State, r)
	c.Poke()
	return r, nil
}
