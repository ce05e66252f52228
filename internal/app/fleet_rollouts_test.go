package app

import (
	"testing"

	"fronttier/internal/config"
	"fronttier/internal/store"
)

// TestTouchesRollout: a followed change pokes the rollout controller when
// it may have moved a rollout, and only then.
func TestTouchesRollout(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.VirtualHosts = []config.VirtualHost{
		{Domain: "plain.test", EnabledBackendsTag: "a"},
		{Domain: "rolled.test", EnabledBackendsTag: "a", Rollout: &config.Rollout{ToTag: "b", State: config.RolloutRunning}},
	}
	snap := store.Snapshot{Config: cfg}
	for _, tt := range []struct {
		name string
		u    store.Update
		want bool
	}{
		{"a domain without rollout", store.Update{Snapshot: snap, Domains: []string{"plain.test"}}, false},
		{"a backend", store.Update{Snapshot: snap, Backends: []string{"b1"}}, false},
		{"a domain with a rollout", store.Update{Snapshot: snap, Domains: []string{"plain.test", "rolled.test"}}, true},
		{"a domain removed", store.Update{Snapshot: snap, Domains: []string{"gone.test"}}, false},
		{"anything (full)", store.Update{Snapshot: snap, Full: true}, true},
	} {
		if got := touchesRollout(tt.u); got != tt.want {
			t.Errorf("%s: touchesRollout = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := activeRollouts(cfg); len(got) != 1 || got[0] != "rolled.test" {
		t.Errorf("activeRollouts = %v, want [rolled.test]", got)
	}
}
