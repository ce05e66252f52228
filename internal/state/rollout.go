package state

import (
	"fmt"
	"slices"
	"time"

	"fronttier/internal/config"
)

// ErrRolloutMoved: a rollout transition's precondition no longer holds
// (an operator paused it, a gate moved it on, it ended meanwhile). It is
// an ErrConflict, so the API answers 409.
var ErrRolloutMoved = fmt.Errorf("%w: the rollout is not in the state the change expects", ErrConflict)

// RolloutExpect is the precondition of a rollout transition: the state the
// host's rollout must be in when the change is applied. It is checked
// inside the serialised commit, so a gate's decision can never overwrite
// an operator's pause made meanwhile, nor two gates the same step.
type RolloutExpect struct {
	// States are the states allowed; empty allows any.
	States []string
	// Step, when Match is set, is the step the rollout must be at, and
	// NextStepAt the gate time it must have (what the gate decided on).
	Match      bool
	Step       int
	NextStepAt time.Time
}

// check is e as a DomainCheck.
func (e RolloutExpect) check(cur *config.VirtualHost) error {
	if cur == nil {
		return nil // editDomain reports the missing domain
	}
	r := cur.Rollout
	if r == nil {
		return fmt.Errorf("%w: domain %q has no rollout", ErrNotFound, cur.Domain)
	}
	if len(e.States) > 0 && !slices.Contains(e.States, r.State) {
		return fmt.Errorf("%w: the rollout of %q is %s (this needs %v)", ErrRolloutMoved, cur.Domain, r.State, e.States)
	}
	if e.Match && (r.Step != e.Step || !r.NextStepAt.Equal(e.NextStepAt)) {
		return fmt.Errorf("%w: the rollout of %q moved on (step %d, gate at %v)", ErrRolloutMoved, cur.Domain, r.Step, r.NextStepAt)
	}
	return nil
}

// StartRollout starts r (whose spec is checked here; its state, from_tag,
// step and canary are set by the caller) on domain: it becomes the host's
// rollout and its canary is set to r's first share. Refused with
// ErrConflict while another rollout is active, and (unless force) when
// r.ToTag has no healthy backend, as a canary is.
func (s *Store) StartRollout(domain string, r config.Rollout, force bool) (config.VirtualHost, error) {
	if err := r.ValidateSpec(); err != nil {
		return config.VirtualHost{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	active := func(cur *config.VirtualHost) error {
		if cur != nil && cur.Rollout.Active() {
			return fmt.Errorf("%w: domain %q has a rollout %s already (to %q); pause, promote or abort it first", ErrConflict, cur.Domain, cur.Rollout.State, cur.Rollout.ToTag)
		}
		return nil
	}
	return s.UpdateDomainIf(domain, active, func(v *config.VirtualHost) error {
		r := r
		r.Steps = slices.Clone(r.Steps)
		if r.FromTag == "" {
			r.FromTag = v.EnabledBackendsTag
		}
		v.Rollout = &r
		v.Canary = &config.Canary{Tag: r.ToTag, Percent: r.Percent}
		return nil
	}, force)
}

// TransitionRollout applies edit (which moves the rollout and, as it
// needs, the canary and enabled_backends_tag) to domain's host when
// expect holds. A change that raises the canary's share or switches the
// tag is refused, unless force, when the tag has no healthy backend.
func (s *Store) TransitionRollout(domain string, expect RolloutExpect, edit func(v *config.VirtualHost) error, force bool) (config.VirtualHost, error) {
	return s.UpdateDomainIf(domain, expect.check, edit, force)
}
