package state

import (
	"errors"
	"sync"
	"testing"

	"fronttier/internal/config"
)

var errStale = errors.New("stale")

// TestChecks checks that a failing precondition fails the change with its
// own error, changes and persists nothing, and sees the item as it is
// (nil when missing); and that a passing one lets the change through.
func TestChecks(t *testing.T) {
	t.Parallel()
	// domainIs passes when the host is present with tag, or absent when
	// tag is "".
	domainIs := func(tag string) (DomainCheck, *bool) {
		called := new(bool)
		return func(cur *config.VirtualHost) error {
			*called = true
			if (cur == nil && tag == "") || (cur != nil && cur.EnabledBackendsTag == tag) {
				return nil
			}
			return errStale
		}, called
	}
	backendAt := func(addr string) (BackendCheck, *bool) {
		called := new(bool)
		return func(cur *config.Backend) error {
			*called = true
			if (cur == nil && addr == "") || (cur != nil && cur.Address == addr) {
				return nil
			}
			return errStale
		}, called
	}
	setTag := func(tag string) func(v *config.VirtualHost) error {
		return func(v *config.VirtualHost) error { v.EnabledBackendsTag = tag; return nil }
	}
	setAddr := func(b *config.Backend) error { b.Address = "192.168.1.99:3000"; return nil }
	tests := []struct {
		name string
		// change runs the change with the check from mk.
		change  func(s *Store) (bool, error)
		wantErr error // nil: succeeds
	}{
		{name: "update domain, check passes", change: func(s *Store) (bool, error) {
			c, called := domainIs("a")
			_, err := s.UpdateDomainIf("example.com", c, setTag("b"), false)
			return *called, err
		}},
		{name: "update domain, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := domainIs("b")
			_, err := s.UpdateDomainIf("example.com", c, setTag("b"), false)
			return *called, err
		}},
		{name: "update missing domain, check sees nil and fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := domainIs("a")
			_, err := s.UpdateDomainIf("nope.example.com", c, setTag("b"), false)
			return *called, err
		}},
		{name: "update missing domain, check passes: not found", wantErr: ErrNotFound, change: func(s *Store) (bool, error) {
			c, called := domainIs("")
			_, err := s.UpdateDomainIf("nope.example.com", c, setTag("b"), false)
			return *called, err
		}},
		{name: "switch, check passes", change: func(s *Store) (bool, error) {
			c, called := domainIs("a")
			_, err := s.SwitchIf("EXAMPLE.com.", c, "b", false)
			return *called, err
		}},
		{name: "switch, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := domainIs("b")
			_, err := s.SwitchIf("example.com", c, "b", false)
			return *called, err
		}},
		{name: "delete domain, check passes", change: func(s *Store) (bool, error) {
			c, called := domainIs("a")
			return *called, s.DeleteDomainIf("example.com", c)
		}},
		{name: "delete domain, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := domainIs("b")
			return *called, s.DeleteDomainIf("example.com", c)
		}},
		{name: "update backend, check passes", change: func(s *Store) (bool, error) {
			c, called := backendAt("192.168.1.10:3000")
			_, err := s.UpdateBackendIf("web-v1", c, setAddr, false)
			return *called, err
		}},
		{name: "update backend, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := backendAt("10.0.0.1:1")
			_, err := s.UpdateBackendIf("web-v1", c, setAddr, false)
			return *called, err
		}},
		{name: "update missing backend, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := backendAt("10.0.0.1:1")
			_, err := s.UpdateBackendIf("nope", c, setAddr, false)
			return *called, err
		}},
		{name: "delete backend, check passes", change: func(s *Store) (bool, error) {
			c, called := backendAt("192.168.1.10:3000")
			return *called, s.DeleteBackendIf("web-v1", c, true)
		}},
		{name: "delete backend, check fails", wantErr: errStale, change: func(s *Store) (bool, error) {
			c, called := backendAt("10.0.0.1:1")
			return *called, s.DeleteBackendIf("web-v1", c, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, baseConfig())
			before := f.store.Config()
			called, err := tt.change(f.store)
			if !called {
				t.Error("check not called")
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("change failed: %v", err)
				}
				if f.p.Count() != 1 {
					t.Errorf("persisted %d times, want 1", f.p.Count())
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, errStale) && err != errStale {
				t.Errorf("check's error wrapped as %v, want it as is", err)
			}
			if f.store.Config() != before || f.p.Count() != 0 {
				t.Error("a refused change changed or persisted the configuration")
			}
		})
	}
}

// TestCheckIsAtomic races switches that all read tag "a" and expect it
// still: exactly one may win, as the check runs inside the commit.
func TestCheckIsAtomic(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			check := func(cur *config.VirtualHost) error {
				if cur == nil || cur.EnabledBackendsTag != "a" {
					return errStale
				}
				return nil
			}
			_, err := f.store.SwitchIf("example.com", check, "b", false)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, errStale):
				t.Errorf("switch: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d switches went through, want exactly 1", wins)
	}
	if f.p.Count() != 1 {
		t.Errorf("persisted %d times, want 1", f.p.Count())
	}
}
