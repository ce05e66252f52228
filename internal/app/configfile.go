package app

import (
	"context"
	"log/slog"

	"fronttier/internal/config"
	"fronttier/internal/logging"
)

// follow puts in force the changes of the configuration's store made
// behind this process's back (a hand edit of the file), until ctx ends:
// see state.Store.Follow.
func (a *App) follow(ctx context.Context) { a.store.Follow(ctx) }

// reload re-reads the store (SIGHUP) and puts it in force; one that cannot
// be put in force is refused and the running configuration stays. In a
// fleet, the node's own settings are read from its file first, then the
// fleet's state from etcd.
func (a *App) reload() {
	log := a.log.Logger
	if a.fleet != nil {
		local, err := a.file.Load(context.Background())
		if err != nil {
			log.Error("reload refused: keeping the running configuration", "error", err)
			return
		}
		a.fleet.store.SetLocal(local.Config)
	}
	if _, _, err := a.store.ReloadStore(context.Background()); err != nil {
		log.Error("reload refused: keeping the running configuration", "error", err)
	}
}

// reloaded is the store's Reloaded hook: what lives outside the store
// follows a configuration read from it (log level, health checks), and
// what only a restart applies is named.
func (a *App) reloaded(old, cfg *config.Config) {
	log := a.log.Logger
	if lvl, err := logging.ParseLevel(cfg.Logging.Level); err == nil {
		a.log.Level.Set(lvl)
	}
	a.checker.SetOptions(healthOptions(cfg.HealthCheck, log, nil))
	a.rolloutsReloaded(cfg)
	if keys := restartNeeded(old, cfg); len(keys) > 0 {
		log.Warn("reload: some changes take effect at the next restart", "sections", keys)
	}
	warnConfig(log, cfg)
	log.Info("configuration reloaded", "domains", len(cfg.VirtualHosts), "backends", len(cfg.Backends))
}

// warnConfig logs what in cfg is probably a mistake (config.Warnings).
func warnConfig(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("configuration warning: " + w)
	}
}
