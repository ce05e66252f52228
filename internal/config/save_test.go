package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names
}

func TestSave(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// oldMode is the existing file's mode; 0 means no existing file.
		oldMode  os.FileMode
		wantMode os.FileMode
	}{
		{name: "new file", wantMode: 0o600},
		{name: "keeps 0644", oldMode: 0o644, wantMode: 0o644},
		{name: "keeps 0640", oldMode: 0o640, wantMode: 0o640},
		{name: "keeps 0400", oldMode: 0o400, wantMode: 0o400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			if tt.oldMode != 0 {
				if err := os.WriteFile(path, []byte("# old\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.oldMode); err != nil {
					t.Fatal(err)
				}
			}
			c := mustParse(t, readTestdata(t, "manual_tls.toml"))
			if err := Save(path, c); err != nil {
				t.Fatalf("Save: %v", err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.wantMode {
				t.Errorf("mode = %v, want %v", got, tt.wantMode)
			}
			if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"config.toml"}) {
				t.Errorf("directory holds %q, want only config.toml (no temporary files)", got)
			}
			back, err := Load(path)
			if err != nil {
				t.Fatalf("Load after Save: %v", err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("Load(Save(c)) =\n%+v\nwant\n%+v", back, c)
			}
		})
	}
}

func TestSaveReplacesContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	first := mustParse(t, readTestdata(t, "manual_example.toml"))
	if err := Save(path, first); err != nil {
		t.Fatal(err)
	}
	second := first.Clone()
	second.VirtualHosts[0].EnabledBackendsTag = "b"
	if err := Save(path, second); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.VirtualHosts[0].EnabledBackendsTag; got != "b" {
		t.Errorf("tag after second Save = %q, want b", got)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"config.toml"}) {
		t.Errorf("directory holds %q, want only config.toml", got)
	}
}

// TestSaveFailure checks that a failing save reports an error, leaves the
// previous content in place and no temporary file behind. Tests may run as
// root, so failure is provoked with paths no permission bit can fix.
func TestSaveFailure(t *testing.T) {
	t.Parallel()
	c := mustParse(t, readTestdata(t, "manual_example.toml"))

	t.Run("directory does not exist", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "missing", "config.toml")
		if err := Save(path, c); err == nil {
			t.Fatal("Save into a missing directory succeeded")
		}
		if got := dirNames(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q after a failed save, want nothing", got)
		}
	})

	t.Run("target cannot be replaced", func(t *testing.T) {
		t.Parallel()
		// The target is a non-empty directory: the temporary file is
		// written, but renaming it over the target fails.
		dir := t.TempDir()
		path := filepath.Join(dir, "config.toml")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		old := filepath.Join(path, "keep")
		if err := os.WriteFile(old, []byte("old content"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Save(path, c); err == nil {
			t.Fatal("Save over a non-empty directory succeeded")
		}
		if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"config.toml"}) {
			t.Errorf("directory holds %q after a failed save, want only config.toml (temporary file removed)", got)
		}
		data, err := os.ReadFile(old)
		if err != nil || string(data) != "old content" {
			t.Errorf("old content = %q, %v; want it intact", data, err)
		}
	})

	t.Run("old file intact when a later save fails", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "config.toml")
		if err := Save(path, c); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Saving to a sibling path in a missing directory fails and must
		// not touch the existing file.
		if err := Save(filepath.Join(dir, "nope", "config.toml"), c); err == nil {
			t.Fatal("Save into a missing directory succeeded")
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(after) != string(before) {
			t.Error("existing file changed by a failed save")
		}
	})
}

func TestWriteFileAtomicConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	done := make(chan error)
	const n = 20
	for i := range n {
		go func() { done <- WriteFileAtomic(path, []byte{byte('a' + i)}) }()
	}
	for range n {
		if err := <-done; err != nil {
			t.Errorf("WriteFileAtomic: %v", err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 {
		t.Errorf("content = %q, want one complete write", data)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("directory holds %q, want only f", got)
	}
}
