package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/logging"
)

// fileStore writes baseConfig to a file and returns a store loaded from
// it, as the app starts one.
func fileStore(t *testing.T) (*Store, *File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := config.Save(path, baseConfig()); err != nil {
		t.Fatal(err)
	}
	f := NewFile(path)
	cfg, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, backend.NewRegistry(nil, nil), f, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// editFile rewrites the file behind the store's back.
func editFile(t *testing.T, path string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(data))
	if out == string(data) {
		t.Fatal("the edit changed nothing")
	}
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHandEditAppliedBeforeAPIChange: a valid hand edit that was not
// reloaded is applied before an API change, so neither is lost.
func TestHandEditAppliedBeforeAPIChange(t *testing.T) {
	t.Parallel()
	s, f := fileStore(t)
	editFile(t, f.Path(), func(s string) string {
		return s + "\n[[virtual_hosts]]\ndomain = \"hand.example.com\"\nenabled_backends_tag = \"a\"\n"
	})
	if _, err := s.AddBackend(config.Backend{ID: "web-v3", Address: "192.168.1.12:3000", Tags: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	back, err := config.Load(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if back.Host("hand.example.com") == nil || back.Backend("web-v3") == nil {
		t.Errorf("file lost a change: hand-edited domain %v, API backend %v", back.Host("hand.example.com") != nil, back.Backend("web-v3") != nil)
	}
	if s.Table().Lookup("hand.example.com") == nil {
		t.Error("the hand-edited domain is not served")
	}
}

// TestBrokenHandEditRefusesAPIChange: a hand edit that cannot be applied
// (a syntax error, a tag typo that would take a serving domain off the
// air) refuses every API change with ErrConflict naming the file and the
// problem, and the file is never overwritten.
func TestBrokenHandEditRefusesAPIChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		edit       func(string) string
	}{
		{"syntax error", "toml", func(s string) string { return s + "\n[[virtual_hosts]\n" }},
		{"tag typo", `example.com (tag "aa")`, func(s string) string {
			return strings.Replace(s, "enabled_backends_tag = 'a'", "enabled_backends_tag = 'aa'", 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, f := fileStore(t)
			before := s.Config()
			edited := editFile(t, f.Path(), tc.edit)
			_, err := s.Switch("api.example.com", "a", false)
			var he *HandEditError
			if !errors.Is(err, ErrConflict) || !errors.As(err, &he) {
				t.Fatalf("Switch over a broken hand edit: %v, want a HandEditError (409)", err)
			}
			if !strings.Contains(err.Error(), f.Path()) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
			if data, _ := os.ReadFile(f.Path()); string(data) != edited {
				t.Error("the hand edit was overwritten")
			}
			if s.Config() != before {
				t.Error("the configuration in force changed")
			}
		})
	}
}

// TestReloadSource: the watcher's reload applies a changed file once and
// does nothing for an unchanged one; a reload that would leave a serving
// domain with no backend is refused; SIGHUP (force) re-reads anyway.
func TestReloadSource(t *testing.T) {
	t.Parallel()
	s, f := fileStore(t)
	if old, cur, err := s.ReloadSource(false); old != nil || cur != nil || err != nil {
		t.Fatalf("unchanged file: %v %v %v, want nothing", old, cur, err)
	}
	if _, cur, err := s.ReloadSource(true); err != nil || cur == nil {
		t.Fatalf("forced reload of an unchanged file: %v, %v", cur, err)
	}
	editFile(t, f.Path(), func(s string) string {
		return strings.Replace(s, "enabled_backends_tag = 'b'", "enabled_backends_tag = 'a'", 1)
	})
	if _, cur, err := s.ReloadSource(false); err != nil || cur.Host("api.example.com").EnabledBackendsTag != "a" {
		t.Fatalf("changed file: %v, %v", cur, err)
	}
	if _, cur, err := s.ReloadSource(false); cur != nil || err != nil {
		t.Fatalf("the same file again: %v, %v; want nothing", cur, err)
	}
	before := s.Config()
	editFile(t, f.Path(), func(s string) string {
		return strings.Replace(s, "enabled_backends_tag = 'a'", "enabled_backends_tag = 'typo'", 1)
	})
	if _, _, err := s.ReloadSource(false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `tag "typo"`) {
		t.Fatalf("reload to a tag with no backend: %v, want ErrConflict naming the tag", err)
	}
	if s.Config() != before {
		t.Error("a refused reload changed the configuration")
	}
}

// TestWatchSeesEdits: File.Watch calls back after the file is rewritten in
// place and after a rename over it (how editors and config management
// replace files).
func TestWatchSeesEdits(t *testing.T) {
	t.Parallel()
	_, f := fileStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan string, 64) // the file's content at each callback
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Watch(ctx, WatchOptions{Settle: 10 * time.Millisecond, Every: time.Hour}, func() {
			data, _ := os.ReadFile(f.Path())
			select {
			case seen <- string(data):
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	// The watch is set up asynchronously: keep writing until a callback
	// sees this write's content, bounded.
	await := func(what, content string, write func(string)) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		write(content)
		for {
			select {
			case got := <-seen:
				if got == content {
					return
				}
			case <-tick.C:
				write(content)
			case <-deadline:
				t.Fatalf("no callback after %s", what)
			}
		}
	}
	await("an in-place write", "# edited\n", func(c string) { os.WriteFile(f.Path(), []byte(c), 0o600) })
	await("a rename over the file", "# renamed\n", func(c string) {
		tmp := filepath.Join(filepath.Dir(f.Path()), "tmp")
		os.WriteFile(tmp, []byte(c), 0o600)
		os.Rename(tmp, f.Path())
	})
}
