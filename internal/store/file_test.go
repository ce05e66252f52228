package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fronttier/internal/config"
	"fronttier/internal/store"
	"fronttier/internal/store/storetest"
)

// fileBacking is a configuration file; each open is another File on it,
// as another process would be.
func fileBacking(t *testing.T, seed *config.Config) func() store.Store {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := config.Save(path, seed); err != nil {
		t.Fatal(err)
	}
	return func() store.Store { return store.NewFile(path) }
}

func TestFileConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, fileBacking, storetest.Options{})
}

// TestFileHandEdits: a broken hand edit cannot be loaded (ErrInvalid,
// naming the file) and a write from before it is stale, so it is never
// overwritten; a deleted file is written again.
func TestFileHandEdits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := fileBacking(t, storetest.Seed())().(*store.File)
	snap, err := f.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broken := []byte("[[virtual_hosts]\n")
	if err := os.WriteFile(f.Path(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	var he *store.HandEditError
	if _, err := f.Load(ctx); !errors.Is(err, store.ErrInvalid) || !errors.As(err, &he) || he.Path != f.Path() {
		t.Fatalf("Load of a broken edit: %v, want a HandEditError naming the file", err)
	}
	if _, err := f.CompareAndSwap(ctx, snap, snap.Config); !errors.Is(err, store.ErrStale) {
		t.Fatalf("write over a broken edit: %v, want ErrStale", err)
	}
	if data, _ := os.ReadFile(f.Path()); string(data) != string(broken) {
		t.Fatal("the edit was overwritten")
	}
	if err := os.Remove(f.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CompareAndSwap(ctx, snap, snap.Config); err != nil {
		t.Fatalf("write after the file was deleted: %v", err)
	}
	if _, err := config.Load(f.Path()); err != nil {
		t.Fatalf("the file written again does not load: %v", err)
	}
}

// TestFileWatch: the watch reports an in-place edit and a rename over the
// file as Full updates, a broken edit once as an error, and never the
// store's own writes.
func TestFileWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := fileBacking(t, storetest.Seed())().(*store.File)
	snap, err := f.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	updates := f.WatchWith(ctx, store.FileWatch{Settle: 10 * time.Millisecond, Every: time.Hour})
	next := func(what string) store.Update {
		t.Helper()
		select {
		case u := <-updates:
			return u
		case <-time.After(10 * time.Second):
			t.Fatalf("no update after %s", what)
		}
		return store.Update{}
	}
	// Our own write is not reported; the hand edit after it is.
	own := snap.Config.Clone()
	own.VirtualHosts = own.VirtualHosts[:1]
	if _, err := f.CompareAndSwap(ctx, snap, own); err != nil {
		t.Fatal(err)
	}
	edited := storetest.Seed()
	edited.VirtualHosts = append(edited.VirtualHosts, config.VirtualHost{Domain: "c.example.com", EnabledBackendsTag: "a"})
	data, _ := config.Marshal(edited)
	if err := os.WriteFile(f.Path(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The file may be read midway through the write (the watch's first
	// look races it): wait for the update that holds the edit.
	for u := next("an in-place edit"); u.Err != nil || !u.Full || u.Config.Host("c.example.com") == nil; u = next("an in-place edit") {
		t.Logf("update before the whole edit: %+v", u)
	}
	tmp := filepath.Join(filepath.Dir(f.Path()), "new")
	os.WriteFile(tmp, []byte("[[virtual_hosts]\n"), 0o600)
	if err := os.Rename(tmp, f.Path()); err != nil {
		t.Fatal(err)
	}
	if u := next("a broken rename over the file"); !errors.Is(u.Err, store.ErrInvalid) {
		t.Fatalf("update %+v, want ErrInvalid", u)
	}
	select {
	case u := <-updates:
		t.Errorf("the same broken file reported again: %+v", u)
	case <-time.After(100 * time.Millisecond): // a negative check: nothing more is due
	}
}
