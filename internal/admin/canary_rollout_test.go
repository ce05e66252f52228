package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"fronttier/internal/rollout"
)

// lateRollouts is a rollout controller bound after the environment's
// store exists.
type lateRollouts struct{ *rollout.Controller }

// TestCanaryDuringRollout: a canary set or cleared by hand while a
// rollout runs is refused with 409 (the next step would overwrite it);
// while it is paused the share of its to_tag may be set, not another
// tag's; resuming puts the step's share back.
func TestCanaryDuringRollout(t *testing.T) {
	t.Parallel()
	ro := &lateRollouts{}
	e := newEnvWith(t, Options{Rollouts: ro})
	ro.Controller = rollout.New(rollout.Options{Store: e.store, Stats: fakeStats{}})
	const d = "/api/v1/domains/api.example.com"
	call := func(want int, method, path, body, wantErr string) {
		t.Helper()
		r := e.do(t, request{method: method, path: path, body: body})
		if r.code != want || !strings.Contains(string(r.body), wantErr) {
			t.Fatalf("%s %s = %d %s; want %d with %q", method, path, r.code, r.body, want, wantErr)
		}
	}
	call(http.StatusCreated, "POST", d+"/rollout",
		`{"to_tag":"a","steps":[5,100],"step_secs":3600,"max_error_rate":0.01,"max_p99_ms":800,"min_requests":10}`, "")
	running := `domain \"api.example.com\" has a running rollout (to \"a\"); pause or abort it first`
	call(http.StatusConflict, "PUT", d+"/canary", `{"tag":"a","percent":50}`, running)
	call(http.StatusConflict, "DELETE", d+"/canary", "", running)

	call(http.StatusOK, "POST", d+"/rollout/pause", "", "")
	call(http.StatusConflict, "PUT", d+"/canary", `{"tag":"green","percent":1}`, `paused rollout to \"a\"`)
	call(http.StatusOK, "PUT", d+"/canary", `{"tag":"a","percent":1}`, "")
	if c := e.store.Config().Host("api.example.com").Canary; c == nil || c.Percent != 1 {
		t.Fatalf("canary after a hand-set share while paused = %+v", c)
	}
	call(http.StatusOK, "DELETE", d+"/canary", "", "")
	call(http.StatusOK, "POST", d+"/rollout/resume", "", "")
	if c := e.store.Config().Host("api.example.com").Canary; c == nil || c.Tag != "a" || c.Percent != 5 {
		t.Fatalf("canary after resume = %+v, want a at the step's 5%%", c)
	}
	call(http.StatusOK, "POST", d+"/rollout/abort", "", "")
	call(http.StatusOK, "PUT", d+"/canary", `{"tag":"a","percent":10}`, "")
	var v struct {
		Canary struct{ Percent float64 } `json:"canary"`
	}
	if err := json.Unmarshal(e.get(t, d).body, &v); err != nil || v.Canary.Percent != 10 {
		t.Fatalf("canary after the rollout ended: %+v %v", v, err)
	}
}
