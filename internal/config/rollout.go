package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"
)

// Rollout states, as in [virtual_hosts.rollout] state.
const (
	RolloutRunning    = "running"     // a gate decides at next_step_at
	RolloutPaused     = "paused"      // held by an operator at its step; no gate runs
	RolloutCompleted  = "completed"   // to_tag is enabled_backends_tag
	RolloutRolledBack = "rolled_back" // a gate failed; all traffic is on from_tag
	RolloutAborted    = "aborted"     // stopped by an operator; all traffic is on from_tag
)

// RolloutStates lists the rollout states, in the order of their lives.
var RolloutStates = [...]string{RolloutRunning, RolloutPaused, RolloutCompleted, RolloutRolledBack, RolloutAborted}

// Rollout raises a canary's share step by step, each step passed by a gate
// on the canary's own traffic (see internal/rollout). It is kept in the
// virtual host once ended, for the record, until the next one starts.
type Rollout struct {
	// ToTag is the new version's tag; FromTag the baseline's, the host's
	// enabled_backends_tag when the rollout started.
	ToTag   string `toml:"to_tag" json:"to_tag"`
	FromTag string `toml:"from_tag" json:"from_tag"`
	// Steps are the canary's shares, rising, the last 100.
	Steps []float64 `toml:"steps" json:"steps"`
	// StepSecs is how long each step lasts before its gate.
	StepSecs int `toml:"step_secs" json:"step_secs"`
	// MaxErrorRate (0 to 1) bounds the canary's error rate in a step, and
	// how much worse than the baseline's it may be.
	MaxErrorRate float64 `toml:"max_error_rate" json:"max_error_rate"`
	// MaxP99Ms bounds the canary's 99th percentile latency; 0 means none.
	MaxP99Ms float64 `toml:"max_p99_ms" json:"max_p99_ms"`
	// MinRequests is the least canary traffic a gate decides on; with
	// less, the step is extended.
	MinRequests int `toml:"min_requests" json:"min_requests"`

	// State is one of the Rollout* states.
	State string `toml:"state" json:"state"`
	// Step indexes Steps; Percent is the canary's share now.
	Step    int     `toml:"step" json:"step"`
	Percent float64 `toml:"percent" json:"percent"`
	// StartedAt, UpdatedAt: when it started and last changed.
	// NextStepAt is when the running step's gate decides (zero once
	// ended).
	StartedAt  time.Time `toml:"started_at" json:"started_at"`
	UpdatedAt  time.Time `toml:"updated_at" json:"updated_at"`
	NextStepAt time.Time `toml:"next_step_at,omitempty" json:"next_step_at,omitzero"`
	// Reason says why the last transition happened.
	Reason string `toml:"reason,omitempty" json:"reason,omitempty"`
	// Canary and Baseline are the last gate's figures for ToTag and
	// FromTag (nil before the first gate).
	Canary   *GateFigures `toml:"canary,omitempty" json:"canary,omitempty"`
	Baseline *GateFigures `toml:"baseline,omitempty" json:"baseline,omitempty"`
}

// GateFigures are one tag's traffic in a gate's window.
type GateFigures struct {
	Requests  int64   `toml:"requests" json:"requests"`
	Errors    int64   `toml:"errors" json:"errors"`
	ErrorRate float64 `toml:"error_rate" json:"error_rate"`
	P99Ms     float64 `toml:"p99_ms" json:"p99_ms"`
}

// Active reports whether the rollout is under way (running or paused):
// another cannot start, and it holds the host's canary.
func (r *Rollout) Active() bool {
	return r != nil && (r.State == RolloutRunning || r.State == RolloutPaused)
}

// clone returns a deep copy of r.
func (r *Rollout) clone() *Rollout {
	if r == nil {
		return nil
	}
	c := *r
	c.Steps = append([]float64(nil), r.Steps...)
	if r.Canary != nil {
		f := *r.Canary
		c.Canary = &f
	}
	if r.Baseline != nil {
		f := *r.Baseline
		c.Baseline = &f
	}
	return &c
}

// MaxRolloutSteps bounds a rollout's steps.
const MaxRolloutSteps = 100

// ValidateSpec checks what an operator sets when starting a rollout
// (to_tag, steps, step_secs and the limits); keys are relative to the
// rollout.
func (r *Rollout) ValidateSpec() error {
	var v validator
	r.validateSpec(&v)
	return v.err()
}

func (r *Rollout) validateSpec(v *validator) {
	v.check("to_tag", CheckTag(r.ToTag))
	switch n := len(r.Steps); {
	case n == 0:
		v.add("steps", errors.New("must not be empty (the last step is 100)"))
	case n > MaxRolloutSteps:
		v.add("steps", fmt.Errorf("%d steps; a rollout may have at most %d", n, MaxRolloutSteps))
	default:
		for i, p := range r.Steps {
			key := fmt.Sprintf("steps[%d]", i)
			if err := CheckPercent(p); err != nil {
				v.add(key, err)
			} else if p == 0 {
				v.add(key, errors.New("must be more than 0"))
			} else if i > 0 && p <= r.Steps[i-1] {
				v.add(key, fmt.Errorf("%v is not above the step before (%v); steps rise", p, r.Steps[i-1]))
			}
		}
		if last := r.Steps[n-1]; last != 100 {
			v.add("steps", fmt.Errorf("the last step is %v; it must be 100", last))
		}
	}
	v.between("step_secs", r.StepSecs, 1, 7*24*3600)
	if !(r.MaxErrorRate >= 0 && r.MaxErrorRate <= 1) {
		v.add("max_error_rate", fmt.Errorf("%v is not between 0 and 1", r.MaxErrorRate))
	}
	if !(r.MaxP99Ms >= 0) || math.IsInf(r.MaxP99Ms, 0) {
		v.add("max_p99_ms", fmt.Errorf("%v is not a number of ms at least 0 (0: no limit)", r.MaxP99Ms))
	}
	v.min("min_requests", r.MinRequests, 0)
}

// validate checks the whole rollout as stored; keys are relative to the
// rollout.
func (r *Rollout) validate(v *validator) {
	r.validateSpec(v)
	v.check("from_tag", CheckTag(r.FromTag))
	if r.FromTag != "" && r.FromTag == r.ToTag {
		v.add("to_tag", fmt.Errorf("%q is from_tag; a rollout moves traffic to another tag", r.ToTag))
	}
	v.oneOf("state", r.State, RolloutStates[:]...)
	if r.Step < 0 || (len(r.Steps) > 0 && r.Step >= len(r.Steps)) {
		v.add("step", fmt.Errorf("%d is not an index of steps (0 to %d)", r.Step, max(len(r.Steps)-1, 0)))
	}
	v.check("percent", CheckPercent(r.Percent))
}

// Rollouts is the [rollouts] section: this node's settings for the
// rollout transitions it makes (in a fleet, each node posts those it
// makes: give every node the same settings).
type Rollouts struct {
	// WebhookURL, when set, receives each rollout transition as a JSON
	// POST (best effort: a failure is logged, never retried). A reload
	// (SIGHUP, the file's change) takes a new URL.
	WebhookURL string `toml:"webhook_url,omitempty"`
}

func (c *Config) validateRollouts(v *validator) {
	if c.Rollouts == nil || c.Rollouts.WebhookURL == "" {
		return
	}
	u, err := url.Parse(c.Rollouts.WebhookURL)
	if err != nil {
		v.add("rollouts.webhook_url", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add("rollouts.webhook_url", fmt.Errorf("%q is not an http:// or https:// URL", c.Rollouts.WebhookURL))
	}
}
