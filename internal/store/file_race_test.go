package store

import (
	"context"
	"path/filepath"
	"testing"

	"fronttier/internal/config"
)

// TestFileLookDropsStaleReads: a write of this File's own landing while
// the watch's look reads the file makes that read stale; it is dropped,
// never reported as a hand edit (which would put the older state back in
// force, undoing an acknowledged change until the next write).
func TestFileLookDropsStaleReads(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.toml")
	c := config.Default()
	c.Proxy.ListenAddrHTTP = "127.0.0.1:0"
	if err := config.Save(path, c); err != nil {
		t.Fatal(err)
	}
	f := NewFile(path)
	ctx := context.Background()
	snap, err := f.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := snap.Config.Clone()
	next.Backends = append(next.Backends, config.Backend{ID: "b1", Address: "127.0.0.1:1", Tags: []string{}, Weight: 1})
	f.afterRead = func() { // the write lands just after look read the older file
		f.afterRead = nil
		if _, err := f.CompareAndSwap(ctx, snap, next); err != nil {
			t.Error(err)
		}
	}
	if u, ok := f.look(); ok {
		t.Fatalf("a read older than our own write was reported: revision %d, backends %d", u.Rev, len(u.Config.Backends))
	}
	if u, ok := f.look(); ok {
		t.Fatalf("our own write was reported: %+v", u)
	}
}
