package app

import (
	"log/slog"

	"fronttier/internal/config"
	"fronttier/internal/rollout"
)

// newRollouts builds the rollout controller. On a single node its gates
// read the node's own per-tag counts; in a fleet every node's controller
// makes the operators' changes, and the gates (driven by the elected node
// only, see fleetRollouts) read the fleet's counts. Its metrics go on the
// node's registry; [rollouts] webhook_url gets its events (a reload takes
// a new URL: see rolloutsReloaded).
func (a *App) newRollouts(cfg *config.Config, log *slog.Logger) *rollout.Controller {
	o := rollout.Options{Store: a.store, Stats: a.metrics, Log: log, Reg: a.metrics.Registry(), WebhookURL: webhookURL(cfg)}
	var fr *fleetRollouts
	if a.fleet != nil {
		fr = a.fleet.newFleetRollouts(a.metrics)
		o.Stats = fr.agg
	}
	c := rollout.New(o)
	if fr != nil {
		fr.ctl = c
	}
	return c
}

// webhookURL is cfg's [rollouts] webhook_url, "" when unset.
func webhookURL(cfg *config.Config) string {
	if cfg.Rollouts == nil {
		return ""
	}
	return cfg.Rollouts.WebhookURL
}

// rolloutsReloaded makes the controller post to the webhook of the
// configuration reloaded.
func (a *App) rolloutsReloaded(cfg *config.Config) {
	if a.rollouts != nil {
		a.rollouts.SetWebhookURL(webhookURL(cfg))
	}
}
