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
	"fronttier/internal/store"
)

// fileStore writes baseConfig to a file and returns a store loaded from
// it, as the app starts one.
func fileStore(t *testing.T) (*Store, *store.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := config.Save(path, baseConfig()); err != nil {
		t.Fatal(err)
	}
	f := store.NewFile(path)
	snap, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewAt(snap, backend.NewRegistry(nil, nil), f, logging.Discard())
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
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Switch over a broken hand edit: %v, want ErrConflict (409)", err)
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

// TestFollowAndReload: Follow applies a hand edit once it is made, and
// refuses one that would leave a serving domain with no backend (the
// configuration in force stays); ReloadStore (SIGHUP) reads the file
// whether or not it changed.
func TestFollowAndReload(t *testing.T) {
	t.Parallel()
	s, f := fileStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx)
	}()
	defer func() { cancel(); <-done }()
	if _, cur, err := s.ReloadStore(ctx); err != nil || cur == nil {
		t.Fatalf("forced reload of an unchanged file: %v, %v", cur, err)
	}
	editFile(t, f.Path(), func(s string) string {
		return strings.Replace(s, "enabled_backends_tag = 'b'", "enabled_backends_tag = 'a'", 1)
	})
	waitFor(t, "the edit applied", func() bool {
		return s.Config().Host("api.example.com").EnabledBackendsTag == "a"
	})
	before := s.Config()
	editFile(t, f.Path(), func(s string) string {
		return strings.Replace(s, "enabled_backends_tag = 'a'", "enabled_backends_tag = 'typo'", 1)
	})
	// The refusal leaves nothing to wait for: a change made through the
	// API afterwards finds the refused edit and is refused too.
	if _, err := s.Switch("api.example.com", "b", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `tag "typo"`) {
		t.Fatalf("a change over a refused edit: %v, want ErrConflict naming the tag", err)
	}
	if s.Config() != before {
		t.Error("a refused edit changed the configuration")
	}
}

// waitFor polls cond until it holds, failing after a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded
	}
}
