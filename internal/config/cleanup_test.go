package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveStaleTemps: the temporary files a crash left beside the config
// file (as WriteFileAtomic names them) are removed and named; anything else
// in the directory, including another file's leftovers, stays.
func TestRemoveStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(manualUsageExample1), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := []string{".config.toml.tmp-1", ".config.toml.tmp-3141592653"}
	keep := []string{
		"config.toml",
		".config.toml.tmp-",       // no random part
		".config.toml.tmp-12ab",   // not what os.CreateTemp makes
		".config.toml.tmp-12.bak", // an operator's copy
		".other.toml.tmp-42",      // another file's leftover
		"config.toml.tmp-42",      // not hidden: not ours
	}
	for _, name := range append(slices.Clone(stale), keep[1:]...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dirName := ".config.toml.tmp-77"
	if err := os.Mkdir(filepath.Join(dir, dirName), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, dirName)

	removed, err := RemoveStaleTemps(path)
	if err != nil {
		t.Fatalf("RemoveStaleTemps: %v", err)
	}
	want := make([]string, len(stale))
	for i, name := range stale {
		want[i] = filepath.Join(dir, name)
	}
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	wantLeft := slices.Sorted(slices.Values(keep))
	if got := dirNames(t, dir); !slices.Equal(got, wantLeft) {
		t.Errorf("left in the directory: %q, want %q", got, wantLeft)
	}

	// Nothing left to do the second time.
	if removed, err := RemoveStaleTemps(path); err != nil || len(removed) != 0 {
		t.Errorf("second RemoveStaleTemps = %q, %v; want nothing removed", removed, err)
	}
}

// TestRemoveStaleTempsSymlink: for a config file reached through a
// symbolic link, the leftovers are those beside the file it points to,
// where WriteFileAtomic writes.
func TestRemoveStaleTempsSymlink(t *testing.T) {
	t.Parallel()
	real, link := t.TempDir(), t.TempDir()
	target := filepath.Join(real, "live.toml")
	if err := os.WriteFile(target, []byte(manualUsageExample1), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(link, "config.toml")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(real, ".live.toml.tmp-99")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStaleTemps(path)
	if err != nil {
		t.Fatalf("RemoveStaleTemps: %v", err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %q, want %q", removed, []string{stale})
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", stale, err)
	}
}

// TestRemoveStaleTempsMatchesSave: a temporary file named as
// WriteFileAtomic names them is recognised, so the two cannot drift
// apart.
func TestRemoveStaleTempsMatchesSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	removed, err := RemoveStaleTemps(path)
	if err != nil || !slices.Equal(removed, []string{f.Name()}) {
		t.Errorf("RemoveStaleTemps = %q, %v; want %q removed", removed, err, f.Name())
	}
}
