package state

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/route"
	"fronttier/internal/store"

	"fronttier/internal/testutil"
)

func ptr[T any](v T) *T { return &v }

// baseConfig is the manual's first example: example.com on tag a (web-v1),
// api.example.com on tag b (web-v2).
func baseConfig() *config.Config {
	c := config.Default()
	c.Proxy.ListenAddrHTTP = "0.0.0.0:80"
	c.VirtualHosts = []config.VirtualHost{
		{Domain: "example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(true)},
		{Domain: "api.example.com", EnabledBackendsTag: "b"},
	}
	c.Backends = []config.Backend{
		{ID: "web-v1", Address: "192.168.1.10:3000", Tags: []string{"a"}},
		{ID: "web-v2", Address: "192.168.1.11:3000", Tags: []string{"b"}},
	}
	return c
}

type fixture struct {
	store *Store
	reg   *backend.Registry
	p     *testutil.Persister
	log   *testutil.SyncBuffer
}

func newFixture(t *testing.T, cfg *config.Config) *fixture {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	f := &fixture{reg: backend.NewRegistry(nil, nil), p: &testutil.Persister{}, log: &testutil.SyncBuffer{}}
	var err error
	f.store, err = New(cfg, f.reg, f.p, slog.New(slog.NewTextHandler(f.log, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// poolIDs returns the ids of the pool members of the host serving domain,
// checking each is the registry's live backend.
func (f *fixture) poolIDs(t *testing.T, domain string) []string {
	t.Helper()
	h := f.store.Table().Lookup(domain)
	if h == nil {
		t.Fatalf("Table().Lookup(%q) = nil", domain)
	}
	ids := []string{}
	for _, b := range h.Pool.Backends {
		if live := f.store.Backend(b.ID); live != b {
			t.Errorf("pool member %s is not the live backend (%p != %p)", b.ID, b, live)
		}
		ids = append(ids, b.ID)
	}
	return ids
}

func (f *fixture) tag(t *testing.T, domain string) string {
	t.Helper()
	h := f.store.Table().Lookup(domain)
	if h == nil {
		t.Fatalf("Table().Lookup(%q) = nil", domain)
	}
	return h.Tag
}

func TestNew(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.VirtualHosts[0], cfg.VirtualHosts[1] = cfg.VirtualHosts[1], cfg.VirtualHosts[0]
	f := newFixture(t, cfg)
	if f.p.Count() != 0 {
		t.Errorf("New persisted %d times, want 0", f.p.Count())
	}
	c := f.store.Config()
	if c == cfg {
		t.Error("Config() is the caller's config; want a copy")
	}
	if c.VirtualHosts[0].Domain != "api.example.com" {
		t.Errorf("Config() not sorted: %v first", c.VirtualHosts[0].Domain)
	}
	if got := f.poolIDs(t, "example.com"); !reflect.DeepEqual(got, []string{"web-v1"}) {
		t.Errorf("example.com pool = %v", got)
	}
	h := f.store.Table().Lookup("EXAMPLE.com:443")
	if h.Tag != "a" || !h.Redirect || !h.TLS {
		t.Errorf("example.com host = %+v", h)
	}
	if got := len(f.reg.All()); got != 2 {
		t.Errorf("registry holds %d backends, want 2", got)
	}
	// Mutating the caller's config afterwards changes nothing.
	cfg.Backends[0].Tags[0] = "zzz"
	if f.store.Config().Backend("web-v1").Tags[0] != "a" {
		t.Error("store aliases the caller's config")
	}
}

func TestDomainChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(s *Store) error
		wantErr error // nil: success
		// check runs after a successful change.
		check func(t *testing.T, f *fixture)
	}{
		{
			name: "add",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "New.Example.COM.", EnabledBackendsTag: "b", HTTPToHTTPS: ptr(false)})
				return err
			},
			check: func(t *testing.T, f *fixture) {
				v := f.store.Config().Host("new.example.com")
				if v == nil || v.EnabledBackendsTag != "b" || v.Redirect() {
					t.Fatalf("config host = %+v", v)
				}
				if got := f.poolIDs(t, "new.example.com"); !reflect.DeepEqual(got, []string{"web-v2"}) {
					t.Errorf("pool = %v", got)
				}
				if h := f.store.Table().Lookup("new.example.com"); h.Redirect {
					t.Error("table host redirects with http_to_https = false")
				}
			},
		},
		{
			name: "add with a tag no backend has yet",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "soon.example.com", EnabledBackendsTag: "later"})
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.poolIDs(t, "soon.example.com"); len(got) != 0 {
					t.Errorf("pool = %v, want empty", got)
				}
			},
		},
		{
			name: "add wildcard",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "*.example.com", EnabledBackendsTag: "b"})
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.tag(t, "shop.example.com"); got != "b" {
					t.Errorf("wildcard tag = %q", got)
				}
				if got := f.tag(t, "api.example.com"); got != "b" {
					t.Errorf("exact tag = %q", got)
				}
			},
		},
		{
			name: "add duplicate",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "EXAMPLE.com", EnabledBackendsTag: "b"})
				return err
			},
			wantErr: ErrExists,
		},
		{
			name: "add invalid domain",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "bad domain", EnabledBackendsTag: "a"})
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "add without tag",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "x.example.com"})
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "add with bad certificate source",
			change: func(s *Store) error {
				_, err := s.AddDomain(config.VirtualHost{Domain: "x.example.com", EnabledBackendsTag: "a", CertificateSource: &config.CertificateSource{Type: "file"}})
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update keeps untouched fields",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.TLSEnabled = ptr(false)
					v.CertificateSource = &config.CertificateSource{Type: config.SourceLetsEncrypt}
					return nil
				}, false)
				return err
			},
			check: func(t *testing.T, f *fixture) {
				v := f.store.Config().Host("example.com")
				want := config.VirtualHost{Domain: "example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(true), TLSEnabled: ptr(false),
					CertificateSource: &config.CertificateSource{Type: config.SourceLetsEncrypt}}
				if !reflect.DeepEqual(*v, want) {
					t.Errorf("host = %+v, want %+v", *v, want)
				}
				if h := f.store.Table().Lookup("example.com"); h.TLS {
					t.Error("table host still TLS")
				}
			},
		},
		{
			name: "update by non-normalised name",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("Example.COM.", func(v *config.VirtualHost) error {
					v.LBPolicy = config.PolicyLeastConn
					return nil
				}, false)
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.store.Config().Host("example.com").LBPolicy; got != config.PolicyLeastConn {
					t.Errorf("lb_policy = %q", got)
				}
			},
		},
		{
			name: "update missing",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("nope.example.com", func(*config.VirtualHost) error { return nil }, false)
				return err
			},
			wantErr: ErrNotFound,
		},
		{
			name: "update cannot rename",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.Domain = "other.example.com"
					return nil
				}, false)
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update to same name in other case is not a rename",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.Domain = "EXAMPLE.COM."
					return nil
				}, false)
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if f.store.Config().Host("example.com") == nil {
					t.Error("example.com gone")
				}
			},
		},
		{
			name: "update invalid",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.LBPolicy = "random"
					return nil
				}, false)
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update edit fails",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.EnabledBackendsTag = "b" // must not leak
					return errors.New("bad input")
				}, false)
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update tag to one without backends",
			change: func(s *Store) error {
				_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error {
					v.EnabledBackendsTag = "nobody"
					return nil
				}, false)
				return err
			},
			wantErr: ErrConflict,
		},
		{
			name:   "delete",
			change: func(s *Store) error { return s.DeleteDomain("Example.com") },
			check: func(t *testing.T, f *fixture) {
				if f.store.Config().Host("example.com") != nil || f.store.Table().Lookup("example.com") != nil {
					t.Error("example.com still present")
				}
				if f.store.Table().Lookup("api.example.com") == nil {
					t.Error("api.example.com lost")
				}
				// Backends stay: they belong to no domain.
				if f.store.Backend("web-v1") == nil {
					t.Error("web-v1 removed with the domain")
				}
			},
		},
		{
			name:    "delete missing",
			change:  func(s *Store) error { return s.DeleteDomain("nope.example.com") },
			wantErr: ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runChange(t, tt.change, tt.wantErr, tt.check)
		})
	}
}

// runChange applies change to a fresh store and checks the outcome: on
// success the persister got exactly the published configuration; on
// failure the error matches wantErr and nothing changed.
func runChange(t *testing.T, change func(s *Store) error, wantErr error, check func(t *testing.T, f *fixture)) {
	t.Helper()
	f := newFixture(t, baseConfig())
	cfgBefore, tableBefore := f.store.Config(), f.store.Table()
	snapshot := cfgBefore.Clone()
	err := change(f.store)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("error = %v, want %v", err, wantErr)
		}
		assertUnchanged(t, f, cfgBefore, tableBefore, snapshot)
		if f.p.Count() != 0 {
			t.Errorf("persister called %d times for a refused change", f.p.Count())
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if f.p.Count() != 1 {
		t.Errorf("persister called %d times, want 1", f.p.Count())
	}
	if got := f.p.Last(); !reflect.DeepEqual(got, f.store.Config()) {
		t.Errorf("persisted config differs from the one in force:\n%+v\n%+v", got, f.store.Config())
	}
	if f.store.Table() == tableBefore {
		t.Error("route table not rebuilt")
	}
	if !reflect.DeepEqual(cfgBefore, snapshot) {
		t.Error("the previous configuration was mutated in place")
	}
	if err := f.store.Config().Validate(); err != nil {
		t.Errorf("config in force is invalid: %v", err)
	}
	if !slices.IsSortedFunc(f.store.Config().VirtualHosts, func(a, b config.VirtualHost) int { return strings.Compare(a.Domain, b.Domain) }) ||
		!slices.IsSortedFunc(f.store.Config().Backends, func(a, b config.Backend) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("config in force is not sorted")
	}
	if check != nil {
		check(t, f)
	}
}

func assertUnchanged(t *testing.T, f *fixture, cfgBefore *config.Config, tableBefore *route.Table, snapshot *config.Config) {
	t.Helper()
	if f.store.Config() != cfgBefore {
		t.Error("Config() pointer changed by a failed change")
	}
	if f.store.Table() != tableBefore {
		t.Error("Table() pointer changed by a failed change")
	}
	if !reflect.DeepEqual(f.store.Config(), snapshot) {
		t.Errorf("config changed by a failed change:\n got %+v\nwant %+v", f.store.Config(), snapshot)
	}
	var ids []string
	for _, b := range f.reg.All() {
		ids = append(ids, b.ID)
	}
	var want []string
	for _, b := range snapshot.Backends {
		want = append(want, b.ID)
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("registry holds %v after a failed change, want %v", ids, want)
	}
}

func TestBackendChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(s *Store) error
		wantErr error
		check   func(t *testing.T, f *fixture)
	}{
		{
			name: "add joins pools at once",
			change: func(s *Store) error {
				_, err := s.AddBackend(config.Backend{ID: "web-v3", Address: "192.168.1.12:3000", Tags: []string{"a", "b"}})
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.poolIDs(t, "example.com"); !reflect.DeepEqual(got, []string{"web-v1", "web-v3"}) {
					t.Errorf("example.com pool = %v", got)
				}
				if got := f.poolIDs(t, "api.example.com"); !reflect.DeepEqual(got, []string{"web-v2", "web-v3"}) {
					t.Errorf("api.example.com pool = %v", got)
				}
			},
		},
		{
			name: "add without tags",
			change: func(s *Store) error {
				_, err := s.AddBackend(config.Backend{ID: "spare", Address: "spare.internal:80"})
				return err
			},
			check: func(t *testing.T, f *fixture) {
				b := f.store.Config().Backend("spare")
				if b == nil || b.Tags == nil || len(b.Tags) != 0 {
					t.Errorf("spare = %+v, want empty non-nil tags", b)
				}
				if f.store.Backend("spare") == nil {
					t.Error("spare not live")
				}
			},
		},
		{
			name: "add duplicate",
			change: func(s *Store) error {
				_, err := s.AddBackend(config.Backend{ID: "web-v1", Address: "192.168.1.99:3000"})
				return err
			},
			wantErr: ErrExists,
		},
		{
			name: "add invalid address",
			change: func(s *Store) error {
				_, err := s.AddBackend(config.Backend{ID: "x", Address: "no-port"})
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "add invalid id",
			change: func(s *Store) error {
				_, err := s.AddBackend(config.Backend{ID: "a/b", Address: "h:1"})
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update tags",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("web-v2", func(b *config.Backend) error {
					b.Tags = []string{"a", "b"}
					return nil
				}, false)
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.poolIDs(t, "example.com"); !reflect.DeepEqual(got, []string{"web-v1", "web-v2"}) {
					t.Errorf("example.com pool = %v", got)
				}
				if got := f.store.Config().Backend("web-v2").Address; got != "192.168.1.11:3000" {
					t.Errorf("address changed to %q", got)
				}
			},
		},
		{
			name: "update missing",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("nope", func(*config.Backend) error { return nil }, false)
				return err
			},
			wantErr: ErrNotFound,
		},
		{
			name: "update cannot rename",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("web-v1", func(b *config.Backend) error {
					b.ID = "web-v9"
					return nil
				}, false)
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update invalid",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("web-v1", func(b *config.Backend) error {
					b.Weight = -1
					return nil
				}, false)
				return err
			},
			wantErr: ErrInvalid,
		},
		{
			name: "update orphans a domain",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("web-v1", func(b *config.Backend) error {
					b.Tags = []string{"c"}
					return nil
				}, false)
				return err
			},
			wantErr: ErrConflict,
		},
		{
			name: "update orphans a domain, forced",
			change: func(s *Store) error {
				_, err := s.UpdateBackend("web-v1", func(b *config.Backend) error {
					b.Tags = []string{"c"}
					return nil
				}, true)
				return err
			},
			check: func(t *testing.T, f *fixture) {
				if got := f.poolIDs(t, "example.com"); len(got) != 0 {
					t.Errorf("example.com pool = %v, want empty", got)
				}
			},
		},
		{
			name:    "delete last backend of an enabled tag",
			change:  func(s *Store) error { return s.DeleteBackend("web-v1", false) },
			wantErr: ErrConflict,
		},
		{
			name:   "delete last backend of an enabled tag, forced",
			change: func(s *Store) error { return s.DeleteBackend("web-v1", true) },
			check: func(t *testing.T, f *fixture) {
				if f.store.Backend("web-v1") != nil || f.store.Config().Backend("web-v1") != nil {
					t.Error("web-v1 still present")
				}
				if got := f.poolIDs(t, "example.com"); len(got) != 0 {
					t.Errorf("example.com pool = %v, want empty", got)
				}
			},
		},
		{
			name:    "delete missing",
			change:  func(s *Store) error { return s.DeleteBackend("nope", true) },
			wantErr: ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runChange(t, tt.change, tt.wantErr, tt.check)
		})
	}
}

func TestDeleteBackendNotLastOfTag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	if _, err := f.store.AddBackend(config.Backend{ID: "web-v1b", Address: "192.168.1.20:3000", Tags: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	old := f.store.Backend("web-v1")
	if err := f.store.DeleteBackend("web-v1", false); err != nil {
		t.Fatalf("DeleteBackend with another backend on the tag: %v", err)
	}
	if got := f.poolIDs(t, "example.com"); !reflect.DeepEqual(got, []string{"web-v1b"}) {
		t.Errorf("pool = %v", got)
	}
	if !old.Removed() {
		t.Error("deleted backend not marked removed")
	}
	// A backend whose tags no domain uses can always go.
	if _, err := f.store.AddBackend(config.Backend{ID: "idle", Address: "10.0.0.9:80", Tags: []string{"zzz"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteBackend("idle", false); err != nil {
		t.Errorf("DeleteBackend(idle): %v", err)
	}
}

func TestSwitch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// unhealthy backends are marked before the switch.
		unhealthy []string
		domain    string
		tag       string
		force     bool
		wantErr   error
		wantPool  []string
	}{
		{name: "to b", domain: "example.com", tag: "b", wantPool: []string{"web-v2"}},
		{name: "domain not normalised", domain: "EXAMPLE.com.", tag: "b", wantPool: []string{"web-v2"}},
		{name: "same tag", domain: "example.com", tag: "a", wantPool: []string{"web-v1"}},
		{name: "tag without backends", domain: "example.com", tag: "c", wantErr: ErrConflict},
		{name: "tag without backends, forced", domain: "example.com", tag: "c", force: true, wantPool: []string{}},
		{name: "all backends unhealthy", unhealthy: []string{"web-v2"}, domain: "example.com", tag: "b", wantErr: ErrConflict},
		{name: "all backends unhealthy, forced", unhealthy: []string{"web-v2"}, domain: "example.com", tag: "b", force: true, wantPool: []string{"web-v2"}},
		{name: "other tag unhealthy", unhealthy: []string{"web-v1"}, domain: "example.com", tag: "b", wantPool: []string{"web-v2"}},
		{name: "invalid tag", domain: "example.com", tag: "b c", wantErr: ErrInvalid},
		{name: "empty tag", domain: "example.com", tag: "", force: true, wantErr: ErrInvalid},
		{name: "missing domain", domain: "nope.example.com", tag: "b", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, baseConfig())
			for _, id := range tt.unhealthy {
				f.store.Backend(id).SetHealth(backend.Unhealthy)
			}
			cfgBefore, tableBefore, snapshot := f.store.Config(), f.store.Table(), f.store.Config().Clone()
			v, err := f.store.Switch(tt.domain, tt.tag, tt.force)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Switch error = %v, want %v", err, tt.wantErr)
				}
				assertUnchanged(t, f, cfgBefore, tableBefore, snapshot)
				return
			}
			if err != nil {
				t.Fatalf("Switch: %v", err)
			}
			if v.EnabledBackendsTag != tt.tag || v.Domain != "example.com" {
				t.Errorf("Switch returned %+v", v)
			}
			// In force immediately, in the table and the config.
			if got := f.tag(t, "example.com"); got != tt.tag {
				t.Errorf("table tag = %q, want %q", got, tt.tag)
			}
			if got := f.poolIDs(t, "example.com"); !reflect.DeepEqual(got, tt.wantPool) {
				t.Errorf("pool = %v, want %v", got, tt.wantPool)
			}
			if got := f.store.Config().Host("example.com").EnabledBackendsTag; got != tt.tag {
				t.Errorf("config tag = %q", got)
			}
			if got := f.p.Last(); got == nil || got.Host("example.com").EnabledBackendsTag != tt.tag {
				t.Error("switch not persisted")
			}
			// The other domain is untouched.
			if got := f.tag(t, "api.example.com"); got != "b" {
				t.Errorf("api.example.com tag = %q", got)
			}
			logs := f.log.String()
			if tt.tag != "a" && (!strings.Contains(logs, "Switched backend tag") || !strings.Contains(logs, "new_tag="+tt.tag)) {
				t.Errorf("log lacks the switch event:\n%s", logs)
			}
		})
	}
}

func TestSwitchAndBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	for i, tag := range []string{"b", "a", "b", "a"} {
		if _, err := f.store.Switch("example.com", tag, false); err != nil {
			t.Fatalf("switch %d to %s: %v", i, tag, err)
		}
		if got := f.tag(t, "example.com"); got != tag {
			t.Fatalf("switch %d: tag = %q, want %q", i, got, tag)
		}
	}
	if f.p.Count() != 4 {
		t.Errorf("persisted %d times, want 4", f.p.Count())
	}
}

func TestPersistFailureChangesNothing(t *testing.T) {
	t.Parallel()
	changes := []struct {
		name   string
		change func(s *Store) error
	}{
		{name: "add domain", change: func(s *Store) error {
			_, err := s.AddDomain(config.VirtualHost{Domain: "new.example.com", EnabledBackendsTag: "a"})
			return err
		}},
		{name: "update domain", change: func(s *Store) error {
			_, err := s.UpdateDomain("example.com", func(v *config.VirtualHost) error { v.TLSEnabled = ptr(false); return nil }, false)
			return err
		}},
		{name: "switch", change: func(s *Store) error {
			_, err := s.Switch("example.com", "b", false)
			return err
		}},
		{name: "delete domain", change: func(s *Store) error { return s.DeleteDomain("example.com") }},
		{name: "add backend", change: func(s *Store) error {
			_, err := s.AddBackend(config.Backend{ID: "web-v3", Address: "10.0.0.3:80", Tags: []string{"a"}})
			return err
		}},
		{name: "update backend address", change: func(s *Store) error {
			_, err := s.UpdateBackend("web-v1", func(b *config.Backend) error { b.Address = "10.0.0.99:80"; return nil }, false)
			return err
		}},
		{name: "delete backend", change: func(s *Store) error { return s.DeleteBackend("web-v1", true) }},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, baseConfig())
			live := f.store.Backend("web-v1")
			cfgBefore, tableBefore, snapshot := f.store.Config(), f.store.Table(), f.store.Config().Clone()
			diskFull := errors.New("no space left on device")
			f.p.SetErr(diskFull)
			err := tt.change(f.store)
			if !errors.Is(err, ErrPersist) || !errors.Is(err, diskFull) {
				t.Fatalf("error = %v, want ErrPersist wrapping the cause", err)
			}
			if f.p.Count() != 1 {
				t.Errorf("persister called %d times, want 1", f.p.Count())
			}
			assertUnchanged(t, f, cfgBefore, tableBefore, snapshot)
			if got := f.store.Backend("web-v1"); got != live || live.Removed() {
				t.Error("live backend replaced or removed by a failed change")
			}
			// The store still works once the disk is back.
			f.p.SetErr(nil)
			if err := tt.change(f.store); err != nil {
				t.Errorf("retry after persist failure: %v", err)
			}
		})
	}
}

func TestHealthSurvivesRebuilds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	if _, err := f.store.AddBackend(config.Backend{ID: "web-v1b", Address: "192.168.1.20:3000", Tags: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	v1 := f.store.Backend("web-v1")
	v1.SetHealth(backend.Unhealthy)
	v1.SetStatus(backend.Status{LastError: "connection refused", ConsecutiveFailures: 3})
	v1.Acquire()
	defer v1.Release()

	edits := []struct {
		name string
		edit func() error
	}{
		{name: "switch other domain", edit: func() error { _, err := f.store.Switch("api.example.com", "a", false); return err }},
		{name: "add domain", edit: func() error {
			_, err := f.store.AddDomain(config.VirtualHost{Domain: "x.example.com", EnabledBackendsTag: "a"})
			return err
		}},
		{name: "add backend", edit: func() error {
			_, err := f.store.AddBackend(config.Backend{ID: "web-v4", Address: "10.0.0.4:80", Tags: []string{"a"}})
			return err
		}},
		{name: "retag the backend itself", edit: func() error {
			_, err := f.store.UpdateBackend("web-v1", func(b *config.Backend) error { b.Tags = []string{"a", "b"}; return nil }, false)
			return err
		}},
		{name: "reweight the backend itself", edit: func() error {
			_, err := f.store.UpdateBackend("web-v1", func(b *config.Backend) error { b.Weight = 7; return nil }, false)
			return err
		}},
		{name: "replace", edit: func() error {
			c := f.store.Config().Clone()
			c.Logging.Level = "debug"
			return replace(f.store, c)
		}},
	}
	for _, e := range edits {
		if err := e.edit(); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if got := f.store.Backend("web-v1"); got != v1 {
			t.Fatalf("%s: web-v1 is a new *Backend", e.name)
		}
		if v1.Health() != backend.Unhealthy || v1.Status().ConsecutiveFailures != 3 || v1.Active() != 1 || v1.Removed() {
			t.Fatalf("%s: web-v1 lost its state: health %v, status %+v, active %d, removed %v",
				e.name, v1.Health(), v1.Status(), v1.Active(), v1.Removed())
		}
		if !slices.Contains(f.store.Table().Lookup("example.com").Pool.Backends, v1) {
			t.Fatalf("%s: example.com pool lacks the live web-v1", e.name)
		}
	}
}

func TestAddressChangeMakesNewBackend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	old := f.store.Backend("web-v1")
	old.SetHealth(backend.Unhealthy)
	b, err := f.store.UpdateBackend("web-v1", func(b *config.Backend) error { b.Address = "192.168.1.50:3000"; return nil }, false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Address != "192.168.1.50:3000" || !reflect.DeepEqual(b.Tags, []string{"a"}) {
		t.Errorf("UpdateBackend returned %+v", b)
	}
	nb := f.store.Backend("web-v1")
	if nb == old || nb.Addr != "192.168.1.50:3000" {
		t.Fatalf("backend after address change = %p %+v, old %p", nb, nb.Addr, old)
	}
	if nb.Health() != backend.Unknown {
		t.Errorf("new backend health = %v, want unknown (not inherited)", nb.Health())
	}
	if !old.Removed() {
		t.Error("old backend not removed")
	}
	if got := f.store.Table().Lookup("example.com").Pool.Backends; len(got) != 1 || got[0] != nb {
		t.Errorf("pool = %v, want the new backend", got)
	}
}

func TestSwitchChecksLiveHealthByAddress(t *testing.T) {
	t.Parallel()
	// A backend the switch would go to is unhealthy; adding a healthy
	// (not yet checked) one to the tag makes the switch acceptable.
	f := newFixture(t, baseConfig())
	f.store.Backend("web-v2").SetHealth(backend.Unhealthy)
	if _, err := f.store.Switch("example.com", "b", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("switch to unhealthy tag: %v, want ErrConflict", err)
	}
	if _, err := f.store.AddBackend(config.Backend{ID: "web-v2b", Address: "192.168.1.21:3000", Tags: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Switch("example.com", "b", false); err != nil {
		t.Fatalf("switch with one routable backend: %v", err)
	}
	// Back to a: healthy again after recovery.
	f.store.Backend("web-v1").SetHealth(backend.Unhealthy)
	if _, err := f.store.Switch("example.com", "a", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("switch back to unhealthy tag: %v, want ErrConflict", err)
	}
	f.store.Backend("web-v1").SetHealth(backend.Healthy)
	if _, err := f.store.Switch("example.com", "a", false); err != nil {
		t.Fatalf("switch back after recovery: %v", err)
	}
}

// TestReturnedValuesDoNotAlias checks that what the store returns can be
// changed by the caller without touching the configuration in force.
func TestReturnedValuesDoNotAlias(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	v, err := f.store.AddDomain(config.VirtualHost{Domain: "new.example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(true),
		CertificateSource: &config.CertificateSource{Type: config.SourceLetsEncrypt}})
	if err != nil {
		t.Fatal(err)
	}
	*v.HTTPToHTTPS = false
	v.CertificateSource.Type = "mutated"
	u, err := f.store.UpdateDomain("new.example.com", func(*config.VirtualHost) error { return nil }, false)
	if err != nil {
		t.Fatal(err)
	}
	*u.HTTPToHTTPS = false
	b, err := f.store.AddBackend(config.Backend{ID: "web-v3", Address: "10.0.0.3:80", Tags: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	b.Tags[0] = "mutated"
	ub, err := f.store.UpdateBackend("web-v3", func(*config.Backend) error { return nil }, false)
	if err != nil {
		t.Fatal(err)
	}
	ub.Tags[0] = "mutated"

	got := f.store.Config().Host("new.example.com")
	if !got.Redirect() || got.CertificateSource.Type != config.SourceLetsEncrypt {
		t.Errorf("config host changed through a returned value: %+v %+v", got, got.CertificateSource)
	}
	if tags := f.store.Config().Backend("web-v3").Tags; tags[0] != "a" {
		t.Errorf("config backend tags changed through a returned value: %v", tags)
	}
}

func TestConcurrentChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := f.store.AddBackend(config.Backend{ID: fmt.Sprintf("node-%02d", i), Address: fmt.Sprintf("10.1.0.%d:80", i+1), Tags: []string{"a"}})
			errs <- err
		})
	}
	// Readers run alongside the writers.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if h := f.store.Table().Lookup("example.com"); h == nil || h.Pool.Len() == 0 {
					t.Error("example.com unroutable during changes")
					return
				}
				_ = len(f.store.Config().Backends)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("AddBackend: %v", err)
		}
	}
	if got := f.p.Count(); got != n {
		t.Errorf("persister called %d times, want %d", got, n)
	}
	if got := len(f.p.Last().Backends); got != n+2 {
		t.Errorf("last persisted config has %d backends, want %d", got, n+2)
	}
	c := f.store.Config()
	if len(c.Backends) != n+2 {
		t.Errorf("config has %d backends, want %d", len(c.Backends), n+2)
	}
	for i := range n {
		id := fmt.Sprintf("node-%02d", i)
		if c.Backend(id) == nil || f.store.Backend(id) == nil {
			t.Errorf("%s missing", id)
		}
	}
	if got := len(f.poolIDs(t, "example.com")); got != n+1 {
		t.Errorf("example.com pool has %d members, want %d", got, n+1)
	}
}

func TestReplace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, baseConfig())
	v2 := f.store.Backend("web-v2")
	next := baseConfig()
	next.VirtualHosts[0].EnabledBackendsTag = "b"
	next.Backends = next.Backends[1:] // web-v1 removed by hand
	next.Backends = append(next.Backends, config.Backend{ID: "aaa", Address: "10.0.0.1:80", Tags: []string{"a"}})
	if err := replace(f.store, next); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if f.p.Count() != 0 {
		t.Errorf("Replace persisted %d times, want 0", f.p.Count())
	}
	if got := f.tag(t, "example.com"); got != "b" {
		t.Errorf("tag after Replace = %q, want b", got)
	}
	if f.store.Backend("web-v1") != nil {
		t.Error("web-v1 still live after Replace")
	}
	if f.store.Backend("web-v2") != v2 {
		t.Error("web-v2 replaced by a new *Backend though unchanged")
	}
	if f.store.Config().Backends[0].ID != "aaa" {
		t.Error("Replace did not sort the config")
	}
	next.VirtualHosts[0].EnabledBackendsTag = "zzz"
	if got := f.store.Config().Host("example.com").EnabledBackendsTag; got != "b" {
		t.Error("store aliases the config given to Replace")
	}

	// An invalid configuration is refused and changes nothing.
	cfgBefore, tableBefore, snapshot := f.store.Config(), f.store.Table(), f.store.Config().Clone()
	bad := baseConfig()
	bad.Backends[0].Address = "nope"
	if err := replace(f.store, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Replace(invalid) = %v, want ErrInvalid", err)
	}
	assertUnchanged(t, f, cfgBefore, tableBefore, snapshot)
}

func TestFilePersister(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/config.toml"
	reg := backend.NewRegistry(nil, nil)
	s, err := New(baseConfig(), reg, store.NewFile(path), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Switch("example.com", "b", false); err != nil {
		t.Fatal(err)
	}
	back, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load after switch: %v", err)
	}
	if !reflect.DeepEqual(back, s.Config()) {
		t.Errorf("file holds\n%+v\nwant\n%+v", back, s.Config())
	}
}
