package admin

import (
	"net/http"
	"strings"
	"time"

	"fronttier/internal/config"
)

// Rollouts starts and moves rollouts (internal/rollout's Controller). Its
// errors wrap the state's sentinels (invalid, not found, conflict).
type Rollouts interface {
	// Start starts a rollout of domain with spec's to_tag, steps,
	// step_secs and limits.
	Start(domain string, spec config.Rollout) (*config.Rollout, error)
	Pause(domain string) (*config.Rollout, error)
	Resume(domain string) (*config.Rollout, error)
	Promote(domain string) (*config.Rollout, error)
	Abort(domain string) (*config.Rollout, error)
}

// rolloutInput is the body of POST /domains/{domain}/rollout.
type rolloutInput struct {
	ToTag        *string   `json:"to_tag"`
	Steps        []float64 `json:"steps"`
	StepSecs     *int      `json:"step_secs"`
	MaxErrorRate *float64  `json:"max_error_rate"`
	MaxP99Ms     float64   `json:"max_p99_ms"`
	MinRequests  int       `json:"min_requests"`
}

// rolloutJSON is a rollout as the API shows it: the stored rollout with
// its domain, the last gate's figures always present (zero before the
// first gate) and next_step_at null unless running.
type rolloutJSON struct {
	Domain string `json:"domain"`
	config.Rollout
	NextStepAt *time.Time         `json:"next_step_at"`
	Canary     config.GateFigures `json:"canary"`
	Baseline   config.GateFigures `json:"baseline"`
}

func toRolloutJSON(domain string, r *config.Rollout) rolloutJSON {
	out := rolloutJSON{Domain: domain, Rollout: *r}
	if !r.NextStepAt.IsZero() {
		t := r.NextStepAt
		out.NextStepAt = &t
	}
	if r.Canary != nil {
		out.Canary = *r.Canary
	}
	if r.Baseline != nil {
		out.Baseline = *r.Baseline
	}
	return out
}

// rollouts returns the rollout controller, or a 404 when there is none.
func (a *API) rollouts() (Rollouts, error) {
	if a.o.Rollouts == nil {
		return nil, notFound("rollouts are not available")
	}
	return a.o.Rollouts, nil
}

// startRollout starts a rollout and answers 201 with it.
func (a *API) startRollout(w http.ResponseWriter, r *http.Request) error {
	var in rolloutInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	var missing []string
	if in.ToTag == nil {
		missing = append(missing, "to_tag")
	}
	if in.Steps == nil {
		missing = append(missing, "steps")
	}
	if in.StepSecs == nil {
		missing = append(missing, "step_secs")
	}
	if in.MaxErrorRate == nil {
		missing = append(missing, "max_error_rate")
	}
	if len(missing) > 0 {
		return badRequest("missing required field(s): %s", strings.Join(missing, ", "))
	}
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	ro, err := a.rollouts()
	if err != nil {
		return err
	}
	out, err := ro.Start(domain, config.Rollout{ToTag: *in.ToTag, Steps: in.Steps, StepSecs: *in.StepSecs,
		MaxErrorRate: *in.MaxErrorRate, MaxP99Ms: in.MaxP99Ms, MinRequests: in.MinRequests})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toRolloutJSON(domain, out))
	return nil
}

// getRollout answers the domain's rollout (under way, or the last one),
// 404 when it has none.
func (a *API) getRollout(w http.ResponseWriter, r *http.Request) error {
	domain, v, err := a.pathHost(r)
	if err != nil {
		return err
	}
	if v.Rollout == nil {
		return notFound("domain %q has no rollout", domain)
	}
	writeJSON(w, http.StatusOK, toRolloutJSON(domain, v.Rollout))
	return nil
}

// rolloutAction is the endpoint of one operator's transition (pause,
// resume, promote, abort): 200 with the rollout, 409 when its state does
// not allow it.
func (a *API) rolloutAction(act func(Rollouts, string) (*config.Rollout, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		domain, err := pathDomain(r)
		if err != nil {
			return err
		}
		ro, err := a.rollouts()
		if err != nil {
			return err
		}
		out, err := act(ro, domain)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toRolloutJSON(domain, out))
		return nil
	}
}
