package state

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/route"
)

// canaryConfig is baseConfig plus web-v3 (tag c) and a backend-less tag
// nowhere.
func canaryConfig() *config.Config {
	c := baseConfig()
	c.Backends = append(c.Backends, config.Backend{ID: "web-v3", Address: "192.168.1.12:3000", Tags: []string{"c"}})
	return c
}

func TestSetCanary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		before  *config.Canary // set with force first
		down    string         // a backend made unhealthy first
		canary  config.Canary
		force   bool
		wantErr error
	}{
		{name: "new", canary: config.Canary{Tag: "b", Percent: 10}},
		{name: "fine share", canary: config.Canary{Tag: "b", Percent: 0.25}},
		{name: "tag without backend", canary: config.Canary{Tag: "nowhere", Percent: 10}, wantErr: ErrConflict},
		{name: "tag without backend, forced", canary: config.Canary{Tag: "nowhere", Percent: 10}, force: true},
		{name: "tag without backend at 0%", canary: config.Canary{Tag: "nowhere", Percent: 0}},
		{name: "unhealthy tag", down: "web-v2", canary: config.Canary{Tag: "b", Percent: 10}, wantErr: ErrConflict},
		{name: "unhealthy tag, share rises", before: &config.Canary{Tag: "b", Percent: 5}, down: "web-v2", canary: config.Canary{Tag: "b", Percent: 10}, wantErr: ErrConflict},
		{name: "unhealthy tag, share falls", before: &config.Canary{Tag: "b", Percent: 25}, down: "web-v2", canary: config.Canary{Tag: "b", Percent: 5}},
		{name: "another tag", before: &config.Canary{Tag: "b", Percent: 25}, down: "web-v3", canary: config.Canary{Tag: "c", Percent: 5}, wantErr: ErrConflict},
		{name: "enabled tag", canary: config.Canary{Tag: "a", Percent: 10}, wantErr: ErrInvalid},
		{name: "over 100", canary: config.Canary{Tag: "b", Percent: 101}, wantErr: ErrInvalid},
		{name: "too fine", canary: config.Canary{Tag: "b", Percent: 0.001}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, canaryConfig())
			if tt.before != nil {
				if _, err := f.store.SetCanary("example.com", *tt.before, true); err != nil {
					t.Fatal(err)
				}
			}
			if tt.down != "" {
				f.store.Backend(tt.down).SetHealth(backend.Unhealthy)
			}
			v, err := f.store.SetCanary("example.com", tt.canary, tt.force)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SetCanary = %v, want %v", err, tt.wantErr)
				}
				if got := f.store.Config().Host("example.com").Canary; !sameCanary(got, tt.before) {
					t.Errorf("a refused change left canary %+v, want %+v", got, tt.before)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetCanary: %v", err)
			}
			if v.Canary == nil || *v.Canary != tt.canary {
				t.Errorf("returned canary %+v, want %+v", v.Canary, tt.canary)
			}
			sp := f.store.Table().Lookup("example.com").Split
			if sp == nil || sp.CanaryTag != tt.canary.Tag || sp.Percent != tt.canary.Percent || sp.Threshold != route.Threshold(tt.canary.Percent) {
				t.Fatalf("published split %+v, want canary %+v", sp, tt.canary)
			}
			for _, b := range sp.Canary.Backends {
				if !slices.Contains(f.store.Config().Backend(b.ID).Tags, tt.canary.Tag) || f.store.Backend(b.ID) != b {
					t.Errorf("canary pool member %s is not a live backend with tag %s", b.ID, tt.canary.Tag)
				}
			}
			if !strings.Contains(f.log.String(), `msg="Canary set" domain=example.com tag=`+tt.canary.Tag) {
				t.Errorf("no Canary set log line:\n%s", f.log.String())
			}
		})
	}
}

func TestClearCanary(t *testing.T) {
	t.Parallel()
	f := newFixture(t, canaryConfig())
	if _, err := f.store.SetCanary("example.com", config.Canary{Tag: "b", Percent: 10}, false); err != nil {
		t.Fatal(err)
	}
	f.store.Backend("web-v2").SetHealth(backend.Unhealthy) // clearing is never refused
	v, err := f.store.ClearCanary("example.com")
	if err != nil || v.Canary != nil {
		t.Fatalf("ClearCanary = %+v, %v", v.Canary, err)
	}
	if h := f.store.Table().Lookup("example.com"); h.Split != nil || h.Tag != "a" {
		t.Errorf("host after clearing: tag %s, split %+v; want tag a and no split", h.Tag, h.Split)
	}
	if !strings.Contains(f.log.String(), `msg="Canary cleared" domain=example.com tag=b`) {
		t.Errorf("no Canary cleared log line:\n%s", f.log.String())
	}
	if _, err := f.store.ClearCanary("example.com"); err != nil {
		t.Errorf("clearing no canary: %v, want nothing to happen", err)
	}
	if _, err := f.store.ClearCanary("nowhere.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ClearCanary of an unknown domain = %v, want ErrNotFound", err)
	}
}

// TestSwitchClearsCanary: a switch (POST .../switch, or a PUT changing the
// tag) ends the canary, unless the PUT sets one itself.
func TestSwitchClearsCanary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(s *Store) (config.VirtualHost, error)
		want *config.Canary
	}{
		{"switch to the canary's tag", func(s *Store) (config.VirtualHost, error) { return s.Switch("example.com", "b", false) }, nil},
		{"switch to another tag", func(s *Store) (config.VirtualHost, error) { return s.Switch("example.com", "c", false) }, nil},
		{"switch to the same tag", func(s *Store) (config.VirtualHost, error) { return s.Switch("example.com", "a", false) }, &config.Canary{Tag: "b", Percent: 10}},
		{"PUT of a tag", func(s *Store) (config.VirtualHost, error) {
			return s.UpdateDomain("example.com", func(v *config.VirtualHost) error { v.EnabledBackendsTag = "c"; return nil }, false)
		}, nil},
		{"PUT of a tag and a canary", func(s *Store) (config.VirtualHost, error) {
			return s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
				v.EnabledBackendsTag, v.Canary = "c", &config.Canary{Tag: "b", Percent: 50}
				return nil
			}, false)
		}, &config.Canary{Tag: "b", Percent: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, canaryConfig())
			if _, err := f.store.SetCanary("example.com", config.Canary{Tag: "b", Percent: 10}, false); err != nil {
				t.Fatal(err)
			}
			v, err := tt.do(f.store)
			if err != nil {
				t.Fatal(err)
			}
			if !sameCanary(v.Canary, tt.want) || !sameCanary(f.store.Config().Host("example.com").Canary, tt.want) {
				t.Errorf("canary %+v, want %+v", v.Canary, tt.want)
			}
			if sp := f.store.Table().Lookup("example.com").Split; (sp != nil) != (tt.want != nil) {
				t.Errorf("published split %+v, want one: %v", sp, tt.want != nil)
			}
		})
	}
}

func TestOverridesPublished(t *testing.T) {
	t.Parallel()
	f := newFixture(t, canaryConfig())
	set := func(force bool, os ...config.Override) error {
		_, err := f.store.UpdateDomain("example.com", func(v *config.VirtualHost) error {
			v.Overrides = os
			return nil
		}, force)
		return err
	}
	if err := set(false, config.Override{Header: "x-canary", Value: "1", Tag: "nowhere"}); !errors.Is(err, ErrConflict) {
		t.Errorf("an override to a tag without backend = %v, want ErrConflict", err)
	}
	if err := set(false, config.Override{Header: "x-canary", Value: "1", Tag: "c"}, config.Override{Query: "v", Value: "b", Tag: "b"}); err != nil {
		t.Fatal(err)
	}
	sp := f.store.Table().Lookup("example.com").Split
	if sp == nil || sp.Canary != nil || len(sp.Overrides) != 2 {
		t.Fatalf("split %+v, want two overrides and no canary", sp)
	}
	if o := sp.Overrides[0]; o.Kind != route.MatchHeader || o.Name != "X-Canary" || o.Tag != "c" || o.Pool.Backends[0].ID != "web-v3" {
		t.Errorf("override 0 = %+v, want the canonical header X-Canary to tag c's pool", o)
	}
	// The pool of tag b is api.example.com's: pools are shared.
	if sp.Overrides[1].Pool != f.store.Table().Lookup("api.example.com").Pool {
		t.Error("the override's pool of tag b is not the pool api.example.com uses")
	}
	// A tag the host already routes to is not checked again.
	f.store.Backend("web-v3").SetHealth(backend.Unhealthy)
	if err := set(false, config.Override{Header: "x-canary", Value: "2", Tag: "c"}); err != nil {
		t.Errorf("editing an override of a tag already routed to: %v", err)
	}
	if err := set(false); err != nil {
		t.Fatal(err)
	}
	if sp := f.store.Table().Lookup("example.com").Split; sp != nil {
		t.Errorf("split %+v after removing every override, want none", sp)
	}
}

// TestSplitSurvivesRebuild: a reload (a whole rebuild) publishes the same
// split as the change that made it.
func TestSplitSurvivesRebuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t, canaryConfig())
	if _, err := f.store.UpdateDomain("example.com", func(v *config.VirtualHost) error {
		v.Canary = &config.Canary{Tag: "b", Percent: 12.5}
		v.Sticky = &config.Sticky{By: "header:x-user-id", Backend: true}
		v.Overrides = []config.Override{{Cookie: "beta", Value: "yes", Tag: "c"}}
		return nil
	}, false); err != nil {
		t.Fatal(err)
	}
	if err := replace(f.store, f.store.Config().Clone()); err != nil {
		t.Fatal(err)
	}
	sp := f.store.Table().Lookup("example.com").Split
	if sp == nil || sp.Threshold != 1250 || sp.Key != route.KeyHeader || sp.Header != "X-User-Id" || !sp.Affinity ||
		len(sp.Overrides) != 1 || sp.Overrides[0].Kind != route.MatchCookie {
		t.Errorf("split after a reload = %+v", sp)
	}
}

func TestAffinityAloneMakesASplit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, canaryConfig())
	for _, tt := range []struct {
		sticky *config.Sticky
		split  bool
	}{
		{&config.Sticky{By: "ip"}, false}, // a key without a canary changes nothing
		{&config.Sticky{Backend: true}, true},
		{nil, false},
	} {
		if _, err := f.store.UpdateDomain("example.com", func(v *config.VirtualHost) error { v.Sticky = tt.sticky; return nil }, false); err != nil {
			t.Fatal(err)
		}
		if sp := f.store.Table().Lookup("example.com").Split; (sp != nil) != tt.split {
			t.Errorf("sticky %+v: split %+v, want one: %v", tt.sticky, sp, tt.split)
		}
	}
}

func TestCanaryOrphans(t *testing.T) {
	t.Parallel()
	f := newFixture(t, canaryConfig())
	if _, err := f.store.SetCanary("example.com", config.Canary{Tag: "c", Percent: 10}, false); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteBackend("web-v3", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "the canary of [example.com]") {
		t.Errorf("deleting the canary's only backend = %v, want a conflict naming the canary", err)
	}
	if err := f.store.DeleteBackend("web-v3", true); err != nil {
		t.Errorf("forced: %v", err)
	}
}
