package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"fronttier/internal/config"
)

// File is a single node's store: the configuration file itself, whole.
// Each write is atomic and durable (config.Save's temporary file, fsync,
// rename, directory fsync), and the file's hand edits are guarded: File
// remembers (by SHA-256) the content of the revision it last wrote or
// read, so a file changed behind its back is a newer state (applied by
// Watch or found by CompareAndSwap's ErrStale), never overwritten unseen.
// An edit that does not load is reported (ErrInvalid, a *HandEditError)
// and blocks writes until it is fixed or reverted.
//
// Revisions are a counter kept by this File, starting at 1 with the first
// Load. A file that cannot be read or written is a plain error (the
// process's own disk, not an unreachable store). File is safe for
// concurrent use.
type File struct {
	path string

	mu    sync.Mutex // guards the fields below
	rev   Revision   // the latest state known; 0 before the first Load or write
	known [sha256.Size]byte
	// seen is the content of the last edit reported invalid, so that an
	// unchanged broken file is reported once, not at every look.
	seen [sha256.Size]byte

	// afterRead, in tests, runs between look's read of the file and its
	// checks: the window in which a write of ours makes the read stale.
	afterRead func()
}

var _ Store = (*File)(nil)

// NewFile returns the store of the configuration file at path.
func NewFile(path string) *File { return &File{path: path} }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Describe implements Describer.
func (f *File) Describe() string { return "configuration file " + f.path }

// Load implements Store: the file read and validated, at a new revision if
// its content changed since the last Load or write.
func (f *File) Load(context.Context) (Snapshot, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read config: %w", err)
	}
	c, err := parse(f.path, data)
	if err != nil {
		return Snapshot{}, &HandEditError{Path: f.path, Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return Snapshot{Config: c, Rev: f.advanceLocked(data)}, nil
}

// advanceLocked makes data the latest state and returns its revision: a
// new one when the content changed.
func (f *File) advanceLocked(data []byte) Revision {
	if sum := sha256.Sum256(data); f.rev == 0 || sum != f.known {
		f.rev++
		f.known = sum
	}
	return f.rev
}

// CompareAndSwap implements Store. The file must still hold the state of
// prev.Rev: a file edited since (by hand, or by another process) is
// ErrStale, so that the caller loads the edit and applies its change on
// top of it. A file never loaded nor written by this File (revision 0) is
// written whatever it holds; a deleted file is written again (nothing is
// lost).
func (f *File) CompareAndSwap(_ context.Context, prev Snapshot, next *config.Config) (Revision, error) {
	data, err := config.Marshal(next)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	unlock, err := lockDir(f.path)
	if err != nil {
		return 0, fmt.Errorf("lock config %s: %w", f.path, err)
	}
	defer unlock()
	if f.rev != 0 {
		cur, err := os.ReadFile(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, fmt.Errorf("read config %s: %w", f.path, err)
		case sha256.Sum256(cur) != f.known || prev.Rev != f.rev:
			return 0, fmt.Errorf("%w: %s changed since revision %d", ErrStale, f.path, prev.Rev)
		}
	}
	if err := config.WriteFileAtomic(f.path, data); err != nil {
		return 0, err
	}
	f.rev++
	f.known = sha256.Sum256(data)
	return f.rev, nil
}

// look reads the file for Watch: an Update when its content changed since
// the latest state known (a hand edit), nothing otherwise (or when it
// cannot be read: a deleted file is not a new state).
func (f *File) look() (Update, bool) {
	// What was known before the read: a write of ours that lands while
	// the file is read makes this read stale (it may hold the content
	// from before the write), and a stale read must never be reported
	// as an edit, which would put an older state back in force.
	f.mu.Lock()
	before := f.known
	f.mu.Unlock()
	data, err := os.ReadFile(f.path)
	if err != nil {
		return Update{}, false
	}
	if f.afterRead != nil {
		f.afterRead()
	}
	sum := sha256.Sum256(data)
	if sum == before {
		return Update{}, false
	}
	if len(data) == 0 {
		return Update{}, false // being written (truncated, not yet filled): wait for the next event
	}
	c, err := parse(f.path, data)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.known != before {
		// Written meanwhile by CompareAndSwap: this read may be stale. An
		// edit made after that write sends its own event (or meets the
		// backstop), and a write over an edit fails as stale.
		return Update{}, false
	}
	if err != nil {
		if sum == f.seen {
			return Update{}, false
		}
		f.seen = sum
		return Update{Err: &HandEditError{Path: f.path, Err: err}}, true
	}
	return Update{Snapshot: Snapshot{Config: c, Rev: f.advanceLocked(data)}, Full: true}, true
}

// parse loads the file's content. An empty file is refused: it is a
// file being written (truncated, not yet filled) far more often than an
// operator's wish to serve nothing, which would take every domain down.
func parse(path string, data []byte) (*config.Config, error) {
	if len(data) == 0 {
		return nil, errors.New("the file is empty")
	}
	return config.LoadData(path, data)
}

// HandEditError is a configuration file changed behind fronttier's back
// whose content cannot be used: Err says why. Nothing is written over it.
type HandEditError struct {
	Path string
	Err  error
}

func (e *HandEditError) Error() string {
	return fmt.Sprintf("configuration file %s was changed on disk and the change cannot be applied, "+
		"so it was not overwritten: fix or revert it, then retry: %v", e.Path, e.Err)
}

func (e *HandEditError) Unwrap() []error { return []error{ErrInvalid, e.Err} }
