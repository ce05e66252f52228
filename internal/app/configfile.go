package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"fronttier/internal/config"
	"fronttier/internal/logging"
	"fronttier/internal/state"
)

// configFile watches the configuration file and puts its edits in force,
// as SIGHUP does: an operator's hand edit is applied by itself (logged),
// and one that cannot be applied is reported once, keeps the running
// configuration, and makes the API refuse changes until it is fixed or
// reverted (state.HandEditError), so that it is never overwritten.
type configFile struct {
	a    *App
	file *state.File

	mu      sync.Mutex // guards lastErr
	lastErr string     // the last refusal logged, so a watcher repeats none
}

// watch applies the file's edits until ctx ends.
func (cf *configFile) watch(ctx context.Context) {
	cf.file.Watch(ctx, state.WatchOptions{Log: cf.a.log.Logger}, func() { cf.reload(false) })
}

// reload puts the file in force: always with force (SIGHUP), else when its
// content changed since it was last written or applied.
func (cf *configFile) reload(force bool) {
	log := cf.a.log.Logger
	_, cur, err := cf.a.store.ReloadSource(force)
	if err == nil {
		cf.remember("")
		if cur == nil {
			log.Debug("configuration file looked at: unchanged", "path", cf.file.Path())
		}
		return
	}
	var he *state.HandEditError
	if errors.As(err, &he) && he.Err != nil {
		if he.Repeated && !force {
			return
		}
		err = he.Err
	}
	if !cf.remember(err.Error()) && !force {
		return
	}
	log.Error("reload refused: the configuration file cannot be applied, keeping the running configuration "+
		"(API changes are refused until the file is fixed or reverted)", "path", cf.file.Path(), "error", err)
}

// remember records the last refusal and reports whether it is new.
func (cf *configFile) remember(msg string) bool {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if msg == cf.lastErr {
		return false
	}
	cf.lastErr = msg
	return true
}

// reloaded is the store's Reloaded hook: what lives outside the store
// follows a configuration read from the file (log level, health checks),
// and what only a restart applies is named.
func (a *App) reloaded(old, cfg *config.Config) {
	log := a.log.Logger
	if lvl, err := logging.ParseLevel(cfg.Logging.Level); err == nil {
		a.log.Level.Set(lvl)
	}
	a.checker.SetOptions(healthOptions(cfg.HealthCheck, log, nil))
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
