package store

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// FileWatch tunes File.Watch.
type FileWatch struct {
	// Settle is how long the file must stay unchanged after an event
	// before it is read (editors write in several steps); default 100ms.
	Settle time.Duration
	// Every is the backstop: the file is also read this often, for file
	// systems that send no events; default 30s.
	Every time.Duration
	Log   *slog.Logger
}

// Watch implements Store with the default FileWatch.
func (f *File) Watch(ctx context.Context, from Revision) <-chan Update {
	return f.WatchWith(ctx, FileWatch{})
}

// WatchWith reports the file's changes made behind the store's back (its
// own writes are known and not reported): it reads the file once when the
// watch is set up (an edit made between a Load and the watch is not
// missed), on file-system events in its directory (which also sees
// editors' and Kubernetes' rename-over-the-file swaps) once they settle,
// and every o.Every as a backstop. The channel closes when ctx ends.
func (f *File) WatchWith(ctx context.Context, o FileWatch) <-chan Update {
	if o.Settle <= 0 {
		o.Settle = 100 * time.Millisecond
	}
	if o.Every <= 0 {
		o.Every = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	out := make(chan Update)
	go func() {
		defer close(out)
		f.watch(ctx, o, out)
	}()
	return out
}

func (f *File) watch(ctx context.Context, o FileWatch, out chan<- Update) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(f.path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		o.Log.Warn("cannot watch the configuration file; it is read periodically instead",
			"path", f.path, "every", o.Every.String(), "error", err)
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	send := func() bool {
		u, ok := f.look()
		if !ok {
			return true
		}
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send() {
		return
	}
	base := filepath.Base(f.path)
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			// The file itself, or a directory entry renamed over it
			// (Kubernetes swaps a ..data link): both can change it.
			if name := filepath.Base(ev.Name); name == base || strings.HasPrefix(name, "..") {
				settle.Reset(o.Settle)
			}
		case err := <-errs:
			o.Log.Debug("configuration file watch error", "path", f.path, "error", err)
		case <-settle.C:
			if !send() {
				return
			}
		case <-tick.C:
			if !send() {
				return
			}
		}
	}
}
