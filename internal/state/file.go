package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"fronttier/internal/config"
)

// File is the configuration file as the store's persistent home. It saves
// every accepted change into the file atomically and durably (see
// config.Save), and it guards the file's hand edits: it remembers the
// content it last wrote or loaded, so that a file changed behind its back
// is noticed (Pending) instead of being overwritten.
//
// The zero value is not usable; use NewFile. File is safe for concurrent
// use; the store calls it under its own lock.
type File struct {
	path string

	mu    sync.Mutex // guards known, loaded and seen
	known [sha256.Size]byte
	// loaded says known holds the content in force: until the file is
	// loaded (or Applied), nothing is guarded.
	loaded bool
	// seen is the content of the last edit found invalid, so that an
	// unchanged broken file is reported once, not at every look.
	seen [sha256.Size]byte
}

var (
	_ Persister = (*File)(nil)
	_ Editable  = (*File)(nil)
)

// NewFile returns the File at path. Load it before anything else.
func NewFile(path string) *File { return &File{path: path} }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Load reads and validates the file and remembers its content as applied,
// for the configuration a process starts with.
func (f *File) Load() (*config.Config, error) {
	c, data, err := f.Read()
	if err != nil {
		return nil, err
	}
	f.Applied(data)
	return c, nil
}

// Read implements Editable: the file's configuration and content, read
// and validated, whether or not it changed.
func (f *File) Read() (*config.Config, []byte, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	c, err := config.LoadData(f.path, data)
	if err != nil {
		return nil, nil, err
	}
	return c, data, nil
}

// Save implements Persister. It refuses (ErrHandEdit) to overwrite a file
// whose content is not what fronttier last wrote or loaded: an edit made
// by hand and not applied must never be lost.
func (f *File) Save(c *config.Config) error {
	data, err := config.Marshal(c)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Deleted by hand: writing it back loses nothing.
	case err != nil:
		return fmt.Errorf("read config %s: %w", f.path, err)
	case f.loaded && sha256.Sum256(cur) != f.known:
		return &HandEditError{Path: f.path}
	}
	if err := config.WriteFileAtomic(f.path, data); err != nil {
		return err
	}
	f.known, f.loaded = sha256.Sum256(data), true
	return nil
}

// Pending implements Editable: it reports an edit of the file that was not
// applied. It returns nothing when the file holds what fronttier last
// wrote or loaded (or is gone); the edited configuration and its content
// when it differs and is valid (the store applies it, then remembers it by
// Applied); a *HandEditError when it differs and cannot be loaded; an
// ErrPersist error when it cannot be read at all.
func (f *File) Pending() (*config.Config, []byte, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil { // not an edit: the file cannot be read (or written) now
		return nil, nil, fmt.Errorf("%w: read config: %w", ErrPersist, err)
	}
	sum := sha256.Sum256(data)
	f.mu.Lock()
	same := !f.loaded || sum == f.known
	f.mu.Unlock()
	if same {
		return nil, nil, nil
	}
	c, err := config.LoadData(f.path, data)
	if err != nil {
		return nil, nil, &HandEditError{Path: f.path, Err: err, Repeated: !f.firstReport(data)}
	}
	return c, data, nil
}

// Applied implements Editable: data (from Read or Pending) is in force.
func (f *File) Applied(data []byte) {
	f.mu.Lock()
	f.known, f.loaded = sha256.Sum256(data), true
	f.mu.Unlock()
}

// firstReport reports whether the broken content data is seen for the
// first time (so it is logged once).
func (f *File) firstReport(data []byte) bool {
	sum := sha256.Sum256(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	if sum == f.seen {
		return false
	}
	f.seen = sum
	return true
}

// HandEditError is a configuration file that was changed behind
// fronttier's back and not applied: Err says why it cannot be (nil when it
// simply was not yet). The API refuses to write over it (409).
type HandEditError struct {
	Path string
	Err  error
	// Repeated says the same broken content was reported before (a
	// watcher logs it once).
	Repeated bool
}

func (e *HandEditError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("configuration file %s was changed on disk and the change is not applied; "+
			"it was not overwritten (send SIGHUP to apply it, or revert it)", e.Path)
	}
	return fmt.Sprintf("configuration file %s was changed on disk and the change cannot be applied, "+
		"so it was not overwritten: fix or revert it, then retry: %v", e.Path, e.Err)
}

func (e *HandEditError) Unwrap() []error { return []error{ErrConflict, e.Err} }

// WatchOptions tunes File.Watch.
type WatchOptions struct {
	// Settle is how long the file must stay unchanged after an event
	// before it is read (editors write in several steps); default 100ms.
	Settle time.Duration
	// Every is the backstop: the file is also looked at this often, for
	// file systems that send no events; default 30s.
	Every time.Duration
	Log   *slog.Logger
}

// Watch calls changed whenever the file's content may have changed, until
// ctx ends: once when the watch is set up, on file-system events in its
// directory (which also sees editors' and Kubernetes' rename-over-the-file
// swaps) once they settle, and every opts.Every as a backstop. changed does the work (a reload that
// compares content, so that calls for nothing cost a read). Watch returns
// when ctx is done.
func (f *File) Watch(ctx context.Context, opts WatchOptions, changed func()) {
	if opts.Settle <= 0 {
		opts.Settle = 100 * time.Millisecond
	}
	if opts.Every <= 0 {
		opts.Every = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(f.path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		opts.Log.Warn("cannot watch the configuration file; it is looked at periodically instead",
			"path", f.path, "every", opts.Every.String(), "error", err)
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	// An edit made between the file's load and the watch's start would
	// be seen only by the backstop: look once now.
	changed()
	base := filepath.Base(f.path)
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			// The file itself, or a directory entry renamed over it
			// (Kubernetes swaps a ..data link): both can change it.
			if filepath.Base(ev.Name) == base || bytes.HasPrefix([]byte(filepath.Base(ev.Name)), []byte("..")) {
				settle.Reset(opts.Settle)
			}
		case err := <-errs:
			opts.Log.Debug("configuration file watch error", "path", f.path, "error", err)
		case <-settle.C:
			changed()
		case <-tick.C:
			changed()
		}
	}
}
