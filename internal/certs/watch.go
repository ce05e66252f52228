package certs

import (
	"context"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDebounce bounds, in multiples of Options.Debounce, how long a steady
// stream of file events can postpone the re-check.
const maxDebounce = 10

// Run watches the directories of every file certificate and re-checks the
// hosts whose files live in a directory that saw an event (after
// Options.Debounce of quiet), and re-checks all file hosts every
// Options.Recheck as a backstop for missed events (NFS, watch limits,
// directories deleted and recreated, whose watches are re-added then). It
// returns when ctx is done, after its goroutines (the watcher's) have
// exited. Sync may be called before Run; Run must not be called twice at
// once (the second call returns at once).
//
// Directories rather than files are watched because editors, certbot and
// Kubernetes replace files by rename or by swapping a symbolic link, which
// loses a watch on the file itself.
func (m *Manager) Run(ctx context.Context) {
	if !m.running.CompareAndSwap(false, true) {
		m.log.Error("certs.Manager.Run called while already running")
		return
	}
	defer m.running.Store(false)

	var (
		w      *fsnotify.Watcher
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if !m.o.noWatch {
		var err error
		w, err = fsnotify.NewWatcher()
		if err != nil {
			m.log.Error("Certificate file watcher unavailable; relying on the periodic re-check",
				"error", err, "recheck", m.o.Recheck)
			w = nil
		} else {
			defer w.Close() // waits for the watcher's goroutine
			events, errs = w.Events, w.Errors
		}
	}

	ticker := time.NewTicker(m.o.Recheck)
	defer ticker.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()

	// rewatch refreshes the watches and re-checks the hosts of directories
	// that were not watched until now: their files may have changed
	// between their last load and the new watch (Sync before Run, a
	// directory recreated).
	rewatch := func() {
		if added := m.refreshWatches(w); len(added) > 0 {
			m.recheck(inDirs(added), false)
		}
	}

	dirty := make(map[string]bool) // directories (and watched paths) that saw events
	all := false                   // re-check every host at the next debounce
	var firstEvent time.Time
	rewatch()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
			rewatch()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dirty[filepath.Dir(ev.Name)] = true
			dirty[ev.Name] = true // the watched directory itself removed or renamed
			now := time.Now()
			if firstEvent.IsZero() {
				firstEvent = now
			}
			if now.Sub(firstEvent) < maxDebounce*m.o.Debounce {
				debounce.Reset(m.o.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Events may have been lost (queue overflow): re-check all.
			m.log.Warn("Certificate file watcher error; re-checking every file certificate", "error", err)
			all = true
			debounce.Reset(m.o.Debounce)
		case <-debounce.C:
			match := inDirs(dirty)
			if all {
				match = nil
			}
			dirty, firstEvent, all = make(map[string]bool), time.Time{}, false
			m.recheck(match, false)
			rewatch()
		case <-ticker.C:
			m.recheck(nil, true)
			rewatch()
		}
	}
}

// inDirs returns a recheck filter selecting hosts with a directory in dirs.
func inDirs(dirs map[string]bool) func([]string) bool {
	return func(hostDirs []string) bool {
		return slices.ContainsFunc(hostDirs, func(d string) bool { return dirs[d] })
	}
}

// refreshWatches makes w watch exactly the directories of the file hosts
// and returns those it started watching. Directories that do not exist
// (yet) are retried on the next refresh.
func (m *Manager) refreshWatches(w *fsnotify.Watcher) (added map[string]bool) {
	if w == nil {
		return nil
	}
	want := make(map[string]bool)
	m.mu.Lock()
	for _, e := range m.hosts {
		for _, d := range e.dirs {
			want[d] = true
		}
	}
	m.mu.Unlock()

	have := make(map[string]bool)
	for _, d := range w.WatchList() {
		have[d] = true
		if !want[d] {
			if err := w.Remove(d); err != nil {
				m.log.Debug("Cannot stop watching a certificate directory", "dir", d, "error", err)
			}
		}
	}
	for d := range want {
		if have[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			m.log.Debug("Cannot watch a certificate directory; will retry", "dir", d, "error", err)
			continue
		}
		m.log.Debug("Watching certificate directory", "dir", d)
		if added == nil {
			added = make(map[string]bool)
		}
		added[d] = true
	}
	return added
}
