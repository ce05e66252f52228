package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const rolloutDoc = minimal + `
[rollouts]
webhook_url = "http://127.0.0.1:9/hook"

[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.canary]
tag = "b"
percent = 25
[virtual_hosts.rollout]
to_tag = "b"
from_tag = "a"
steps = [5, 25, 50, 100]
step_secs = 60
max_error_rate = 0.01
max_p99_ms = 800
min_requests = 100
state = "running"
step = 1
percent = 25
started_at = 2026-01-01T00:00:00Z
updated_at = 2026-01-01T00:01:00.5Z
next_step_at = 2026-01-01T00:02:00.5Z
reason = "step 0 (5%) passed"
[virtual_hosts.rollout.canary]
requests = 200
errors = 1
error_rate = 0.005
p99_ms = 12.5
[virtual_hosts.rollout.baseline]
requests = 3000
errors = 0
error_rate = 0
p99_ms = 10
`

// TestRolloutRoundTrip checks the rollout section parses, survives
// Marshal, and is deep-copied by Clone.
func TestRolloutRoundTrip(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(rolloutDoc))
	r := c.VirtualHosts[0].Rollout
	if r == nil || r.State != RolloutRunning || r.Step != 1 || !r.Active() || r.Canary.Requests != 200 ||
		!r.NextStepAt.Equal(time.Date(2026, 1, 1, 0, 2, 0, 5e8, time.UTC)) || c.Rollouts.WebhookURL != "http://127.0.0.1:9/hook" {
		t.Fatalf("rollout = %+v", r)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if back := mustParse(t, out); !reflect.DeepEqual(back.VirtualHosts[0].Rollout, r) {
		t.Errorf("round trip changed the rollout:\n got %+v\nwant %+v\n%s", back.VirtualHosts[0].Rollout, r, out)
	}
	n := c.Clone()
	n.VirtualHosts[0].Rollout.Steps[0] = 1
	n.VirtualHosts[0].Rollout.Canary.Requests = 1
	if r.Steps[0] != 5 || r.Canary.Requests != 200 {
		t.Error("Clone shares the rollout's steps or figures")
	}
}

func TestRolloutInvalid(t *testing.T) {
	t.Parallel()
	base := rolloutDoc
	tests := []struct {
		name, from, to, wantErr string
	}{
		{"falling steps", "steps = [5, 25, 50, 100]", "steps = [5, 50, 25, 100]", "virtual_hosts[0].rollout.steps[2]: 25 is not above the step before (50)"},
		{"last step", "steps = [5, 25, 50, 100]", "steps = [5, 25, 50]", "virtual_hosts[0].rollout.steps: the last step is 50; it must be 100"},
		{"state", `state = "running"`, `state = "flying"`, `virtual_hosts[0].rollout.state: "flying" is not one of`},
		{"step", "step = 1", "step = 4", "virtual_hosts[0].rollout.step: 4 is not an index of steps"},
		{"step_secs", "step_secs = 60", "step_secs = 0", "virtual_hosts[0].rollout.step_secs: 0 is not between 1 and"},
		{"max_error_rate", "max_error_rate = 0.01", "max_error_rate = 2", "virtual_hosts[0].rollout.max_error_rate: 2 is not between 0 and 1"},
		{"min_requests", "min_requests = 100", "min_requests = -1", "virtual_hosts[0].rollout.min_requests: -1 is less than 0"},
		{"same tags", `from_tag = "a"`, `from_tag = "b"`, `virtual_hosts[0].rollout.to_tag: "b" is from_tag`},
		{"webhook", `webhook_url = "http://127.0.0.1:9/hook"`, `webhook_url = "ftp://x"`, `rollouts.webhook_url: "ftp://x" is not an http:// or https:// URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := strings.Replace(base, tt.from, tt.to, 1)
			if doc == base {
				t.Fatalf("%q not in the document", tt.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
