package rollout

import (
	"errors"
	"fmt"
	"time"

	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/state"
)

// gate decides the end of r's running step on the traffic of its window
// w: extend it (too little canary traffic), roll back (a limit is
// broken), complete (the last step passed) or start the next step. It
// returns the rollout as stored after, nil when the change failed.
func (c *Controller) gate(domain string, r *config.Rollout, w window, now time.Time) *config.Rollout {
	cur := c.o.Stats.Stats(domain)
	cs, bs := cur[r.ToTag].Sub(w.canary), cur[r.FromTag].Sub(w.base)
	cf, bf := figures(cs), figures(bs)
	setFigures := func(v *config.VirtualHost) { v.Rollout.Canary, v.Rollout.Baseline = cf, bf }
	if cs.Requests < uint64(r.MinRequests) {
		next := now.Add(stepDur(r))
		reason := fmt.Sprintf("step %d (%v%%) extended by %ds: too little canary traffic (%d requests, min_requests %d)",
			r.Step, r.Percent, r.StepSecs, cs.Requests, r.MinRequests)
		nr, err := c.transition(domain, expectAt(r), func(v *config.VirtualHost) {
			setFigures(v)
			v.Rollout.NextStepAt, v.Rollout.Reason = next, reason
		}, true, now)
		if err != nil {
			c.failed(domain, "extend", err, now)
			return nil
		}
		w.next = next // the window goes on: its traffic adds up
		c.windows[domain] = w
		c.log.Info("Rollout step extended", "domain", domain, "step", nr.Step, "percent", nr.Percent, "canary_requests", cs.Requests, "min_requests", r.MinRequests, "next_step_at", next)
		c.notify(domain, "extended", nr)
		return nr
	}
	if reason := verdict(r, cs, bs); reason != "" {
		return c.orFail(domain, "roll back", now)(c.end(domain, expectAt(r), config.RolloutRolledBack, fmt.Sprintf("rolled back at step %d (%v%%): %s", r.Step, r.Percent, reason), setFigures, now))
	}
	passed := fmt.Sprintf("step %d (%v%%) passed: canary error_rate %.4g, p99 %.4g ms over %d requests",
		r.Step, r.Percent, cf.ErrorRate, cf.P99Ms, cs.Requests)
	if r.Step == len(r.Steps)-1 {
		return c.orFail(domain, "complete", now)(c.complete(domain, expectAt(r), passed+"; completed", setFigures, now))
	}
	next := now.Add(stepDur(r))
	nr, err := c.transition(domain, expectAt(r), func(v *config.VirtualHost) {
		setFigures(v)
		ro := v.Rollout
		ro.Step++
		ro.Percent = ro.Steps[ro.Step]
		ro.NextStepAt = next
		ro.Reason = fmt.Sprintf("%s; step %d at %v%%", passed, ro.Step, ro.Percent)
		v.Canary = &config.Canary{Tag: ro.ToTag, Percent: ro.Percent}
	}, false, now)
	if errors.Is(err, state.ErrConflict) && !errors.Is(err, state.ErrRolloutMoved) {
		// The share cannot rise: the canary's tag lost its backends.
		return c.orFail(domain, "roll back", now)(c.end(domain, expectAt(r), config.RolloutRolledBack, fmt.Sprintf("rolled back at step %d (%v%%): cannot raise the share: %v", r.Step, r.Percent, err), setFigures, now))
	}
	if err != nil {
		c.failed(domain, "next step", err, now)
		return nil
	}
	c.snapshotLocked(domain, nr)
	c.record(domain, "step", nr)
	return nr
}

// verdict returns why the canary's traffic cs fails r's limits, comparing
// it with the baseline's bs, or "" when it passes.
func verdict(r *config.Rollout, cs, bs metrics.TagStats) string {
	// The comparison with the baseline comes first, so that the reason
	// names it when it had traffic; with one threshold for both, a canary
	// within max_error_rate is never worse than the baseline by more.
	ce := cs.ErrorRate()
	if bs.Requests > 0 {
		if be := bs.ErrorRate(); ce-be > r.MaxErrorRate {
			return fmt.Sprintf("canary error_rate %.4g (%d of %d requests) is worse than the baseline's %.4g by %.4g, more than max_error_rate %v",
				ce, cs.Errors, cs.Requests, be, ce-be, r.MaxErrorRate)
		}
	}
	if ce > r.MaxErrorRate {
		return fmt.Sprintf("canary error_rate %.4g (%d of %d requests) is above max_error_rate %v", ce, cs.Errors, cs.Requests, r.MaxErrorRate)
	}
	if r.MaxP99Ms > 0 {
		if p99 := cs.Quantile(0.99); p99 > r.MaxP99Ms {
			return fmt.Sprintf("canary p99 latency %.4g ms is above max_p99_ms %v", p99, r.MaxP99Ms)
		}
	}
	return ""
}

// figures are a window's counts as a gate reports them.
func figures(s metrics.TagStats) *config.GateFigures {
	return &config.GateFigures{Requests: int64(s.Requests), Errors: int64(s.Errors), ErrorRate: s.ErrorRate(), P99Ms: s.Quantile(0.99)}
}

// end stops domain's rollout in state to (rolled_back or aborted): the
// canary is cleared, all traffic is on from_tag. Taking traffic away is
// never refused.
func (c *Controller) end(domain string, expect state.RolloutExpect, to, reason string, extra func(v *config.VirtualHost), now time.Time) (*config.Rollout, error) {
	nr, err := c.transition(domain, expect, func(v *config.VirtualHost) {
		if extra != nil {
			extra(v)
		}
		v.Canary = nil
		v.Rollout.State, v.Rollout.Percent, v.Rollout.NextStepAt, v.Rollout.Reason = to, 0, time.Time{}, reason
	}, true, now)
	if err != nil {
		return nil, err
	}
	delete(c.windows, domain)
	c.record(domain, to, nr)
	return nr, nil
}

// complete ends domain's rollout with to_tag enabled: the switch, which
// the state logs as "Switched backend tag", and the canary cleared.
func (c *Controller) complete(domain string, expect state.RolloutExpect, reason string, extra func(v *config.VirtualHost), now time.Time) (*config.Rollout, error) {
	nr, err := c.transition(domain, expect, func(v *config.VirtualHost) {
		if extra != nil {
			extra(v)
		}
		v.EnabledBackendsTag = v.Rollout.ToTag
		v.Canary = nil
		v.Rollout.State, v.Rollout.Percent, v.Rollout.NextStepAt, v.Rollout.Reason = config.RolloutCompleted, 100, time.Time{}, reason
	}, false, now)
	if err != nil {
		return nil, err
	}
	delete(c.windows, domain)
	c.record(domain, config.RolloutCompleted, nr)
	return nr, nil
}

// orFail returns a function that passes a change's rollout on, or notes
// its error (see failed) and returns nil.
func (c *Controller) orFail(domain, what string, now time.Time) func(*config.Rollout, error) *config.Rollout {
	return func(r *config.Rollout, err error) *config.Rollout {
		if err != nil {
			c.failed(domain, what, err, now)
			return nil
		}
		return r
	}
}
