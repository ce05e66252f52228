package app

import (
	"log/slog"

	"fronttier/internal/admin"
	"fronttier/internal/config"
	"fronttier/internal/metrics"
	"fronttier/internal/rollout"
	"fronttier/internal/state"
)

// newRollouts builds the rollout controller of a single node: its gates
// read the node's own per-tag counts, its metrics go on the node's
// registry, and [rollouts] webhook_url (as at start-up) gets its events.
func newRollouts(cfg *config.Config, st *state.Store, m *metrics.Metrics, log *slog.Logger) *rollout.Controller {
	o := rollout.Options{Store: st, Stats: m, Log: log, Reg: m.Registry()}
	if cfg.Rollouts != nil {
		o.WebhookURL = cfg.Rollouts.WebhookURL
	}
	return rollout.New(o)
}

// rolloutsAPI is c for the management API: nil (rollout changes answer
// 404) when there is no controller, as in a fleet until one node is
// elected to drive rollouts.
func rolloutsAPI(c *rollout.Controller) admin.Rollouts {
	if c == nil {
		return nil
	}
	return c
}
