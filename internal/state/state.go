// Package state is the authoritative set of domains and backends. It applies
// each change under one mutex: build the next configuration, validate it,
// persist it durably, then publish a new route table with one atomic swap.
// A change that fails any step changes nothing.
package state

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/config"
	"fronttier/internal/route"
)

// Errors a change can fail with; the API maps them to HTTP statuses.
var (
	ErrInvalid  = errors.New("invalid")        // 400
	ErrNotFound = errors.New("not found")      // 404
	ErrExists   = errors.New("already exists") // 409
	ErrConflict = errors.New("conflict")       // 409: refused to protect traffic
	ErrPersist  = errors.New("persist")        // 500: nothing was changed
)

// Persister makes an accepted configuration durable. Save must not return
// before the configuration would survive a crash.
type Persister interface {
	Save(c *config.Config) error
}

// Editable is a Persister whose content can change behind the store's
// back: a configuration file edited by hand. Before each change the store
// applies such an edit first (or refuses the change when the edit cannot
// be applied), so that no edit is ever overwritten unseen.
type Editable interface {
	Persister
	// Pending returns the configuration the source holds and its raw
	// content when they differ from what was last saved or applied, or
	// nothing; an error (wrapping ErrConflict) when the source changed
	// and cannot be used.
	Pending() (*config.Config, []byte, error)
	// Read returns the configuration the source holds, changed or not.
	Read() (*config.Config, []byte, error)
	// Applied records that data, from Pending or Read, is in force.
	Applied(data []byte)
}

// Hooks let other components take part in changes. Both run under the
// store's lock, so calls are serialised and in the order of the changes.
type Hooks struct {
	// Check vets a candidate configuration beyond its own validation (for
	// example, that new certificate files load); an error refuses the
	// change as invalid. old is the configuration in force.
	Check func(old, next *config.Config) error
	// Published is told about each configuration put in force, after its
	// route table is published.
	// domain is the only host that changed, or "" when anything may have
	// (backends, a reload, the first call).
	Published func(old, next *config.Config, domain string)
	// Reloaded is told about each whole configuration read from the
	// persister and put in force (a reload, or a hand edit applied before
	// an API change), after Published: settings outside the store
	// (log level, health checks) follow it.
	Reloaded func(old, next *config.Config)
}

// Store holds the current configuration and the route table built from it.
// Reads (Config, Table) are lock-free atomic loads; changes are serialised
// by mu.
type Store struct {
	log     *slog.Logger
	persist Persister
	reg     *backend.Registry

	mu    sync.Mutex                // serialises changes; held across validate, persist, publish
	hooks Hooks                     // guarded by mu
	pools map[poolKey]*balance.Pool // guarded by mu: the pools of the table in force
	cfg   atomic.Pointer[config.Config]
	table atomic.Pointer[route.Table]
}

// New returns a store serving cfg (which must be valid) and publishes its
// route table. reg holds the live backends; persist receives every accepted
// change.
func New(cfg *config.Config, reg *backend.Registry, persist Persister, log *slog.Logger) (*Store, error) {
	s := &Store{log: log, persist: persist, reg: reg}
	c := cfg.Clone()
	c.Sort()
	if err := s.publish(nil, c, scope{}); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the configuration in force. It must not be modified.
func (s *Store) Config() *config.Config { return s.cfg.Load() }

// Table returns the route table in force. It must not be modified.
func (s *Store) Table() *route.Table { return s.table.Load() }

// Backend returns the live backend with id, or nil.
func (s *Store) Backend(id string) *backend.Backend { return s.reg.Get(id) }

// SetHooks installs h and tells h.Published about the configuration in
// force.
func (s *Store) SetHooks(h Hooks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = h
	if h.Published != nil {
		h.Published(nil, s.cfg.Load(), "")
	}
}

// Reload reads the configuration with load and puts it in force, holding
// the store's lock throughout: no API change can be saved between reading
// the file and replacing the configuration, so a reload can never undo an
// acknowledged change. It returns the configuration that was in force and
// the new one; on error nothing changed.
func (s *Store) Reload(load func() (*config.Config, error)) (old, cur *config.Config, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := load()
	if err != nil {
		return nil, nil, err
	}
	old = s.cfg.Load()
	if err := s.replaceLocked(c); err != nil {
		return nil, nil, err
	}
	return old, s.cfg.Load(), nil
}

// ReloadSource puts the persister's configuration in force (it must be
// Editable): with force always (SIGHUP), else only when it changed since
// it was last saved or applied (a file watcher). It returns the
// configurations before and after, both nil when nothing changed; on error
// nothing changed.
func (s *Store) ReloadSource(force bool) (old, cur *config.Config, err error) {
	ed, ok := s.persist.(Editable)
	if !ok {
		return nil, nil, errors.New("the configuration's store cannot be reloaded")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	read := ed.Pending
	if force {
		read = ed.Read
	}
	c, data, err := read()
	if err != nil || c == nil {
		return nil, nil, err
	}
	old = s.cfg.Load()
	if err := s.replaceLocked(c); err != nil {
		return nil, nil, err
	}
	ed.Applied(data)
	return old, s.cfg.Load(), nil
}

// applyPendingLocked puts in force an edit of the persister's content
// that was not applied yet, before a change is made on top of it; an edit
// that cannot be applied refuses the change (ErrConflict), so that it is
// never overwritten.
func (s *Store) applyPendingLocked() error {
	ed, ok := s.persist.(Editable)
	if !ok {
		return nil
	}
	c, data, err := ed.Pending()
	if err != nil || c == nil {
		return err
	}
	if err := s.replaceLocked(c); err != nil {
		var he *HandEditError
		if errors.As(err, &he) {
			return err
		}
		path := "the configuration file"
		if f, ok := ed.(*File); ok {
			path = f.Path()
		}
		return &HandEditError{Path: path, Err: err}
	}
	ed.Applied(data)
	s.log.Info("configuration file changed on disk: applied before the API change", "domains", len(c.VirtualHosts), "backends", len(c.Backends))
	return nil
}

// replaceLocked puts a whole configuration in force: validated, checked
// by the Check hook, and refused when it would take a domain that serves
// now off the air (its tag left with no backend), as the API's switch is.
func (s *Store) replaceLocked(c *config.Config) error {
	next := c.Clone()
	next.Sort()
	if err := next.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	old := s.cfg.Load()
	if err := checkServing(old, next); err != nil {
		return err
	}
	if s.hooks.Check != nil {
		if err := s.hooks.Check(old, next); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if err := s.publish(old, next, scope{}); err != nil {
		return err
	}
	if s.hooks.Reloaded != nil && old != nil {
		s.hooks.Reloaded(old, next)
	}
	return nil
}

// scope says what a change touched, so that publishing can do only the
// work that change needs. The zero scope means anything may have changed.
type scope struct {
	// domain, when set, is the only virtual host the change added,
	// edited or removed; the change must not touch backends at all (the
	// list is shared with the configuration in force).
	domain string
}

// commit applies change to a copy of the configuration in force, checks it
// with guard (may be nil) and, if all is well, persists and publishes it.
// change must validate the items it adds or edits, keep domains and ids
// unique and keep both lists sorted (insertSorted); the configuration in
// force is valid, so only the shared rules are checked here again. An item
// edited in place must first be replaced by its Clone (next is a shallow
// copy).
func (s *Store) commit(sc scope, change func(c *config.Config) error, guard func(old, next *config.Config) error) (*config.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.applyPendingLocked(); err != nil {
		return nil, err
	}
	old := s.cfg.Load()
	var next *config.Config
	if sc.domain != "" {
		n := *old // backends are untouched by a domain change: share them
		n.VirtualHosts = slices.Clone(old.VirtualHosts)
		next = &n
	} else {
		next = old.CloneShallow()
	}
	if err := change(next); err != nil {
		return nil, err
	}
	if err := next.ValidateShared(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if guard != nil {
		if err := guard(old, next); err != nil {
			return nil, err
		}
	}
	if s.hooks.Check != nil {
		if err := s.hooks.Check(old, next); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if err := s.persist.Save(next); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	if err := s.publish(old, next, sc); err != nil {
		// The file holds next, which validated; building its table cannot
		// fail for a valid configuration, so this is a programming error.
		return nil, fmt.Errorf("publish: %w", err)
	}
	return next, nil
}

// tagIndex maps each tag to the indexes of the backends carrying it, in
// backend order (sorted by id).
func tagIndex(c *config.Config) map[string][]int {
	m := make(map[string][]int)
	for i, b := range c.Backends {
		for _, t := range b.Tags {
			m[t] = append(m[t], i)
		}
	}
	return m
}

// checkTag refuses a tag that no backend carries, or whose backends are all
// known to be unhealthy.
func (s *Store) checkTag(c *config.Config, tag string) error {
	n, down := 0, 0
	for i := range c.Backends {
		b := &c.Backends[i]
		if !b.HasTag(tag) {
			continue
		}
		n++
		if live := s.reg.Get(b.ID); live != nil && live.Addr == b.Address && !live.Routable() {
			down++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("%w: no backend carries tag %q (add one first, or pass \"force\": true)", ErrConflict, tag)
	case down == n && n == 1:
		return fmt.Errorf("%w: the only backend with tag %q is unhealthy (pass \"force\": true to switch anyway)", ErrConflict, tag)
	case down == n:
		return fmt.Errorf("%w: all %d backends with tag %q are unhealthy (pass \"force\": true to switch anyway)", ErrConflict, n, tag)
	}
	return nil
}

// checkServing refuses a whole new configuration that would take a domain
// that serves now (its tag has a backend) to a tag with no backend: a
// typo in a hand-edited file must not take a site down unwarned. Domains
// that did not serve, or are new, are only warned about (config.Warnings).
func checkServing(old, next *config.Config) error {
	if old == nil {
		return nil
	}
	had, has := tagIndex(old), tagIndex(next)
	var hit []string
	for i := range next.VirtualHosts {
		v := &next.VirtualHosts[i]
		was := old.Host(v.Domain)
		if was == nil || len(had[was.EnabledBackendsTag]) == 0 || len(has[v.EnabledBackendsTag]) > 0 {
			continue
		}
		hit = append(hit, fmt.Sprintf("%s (tag %q)", v.Domain, v.EnabledBackendsTag))
	}
	if len(hit) == 0 {
		return nil
	}
	what := "it serves now; refusing to take it off the air"
	if len(hit) > 1 {
		what = "they serve now; refusing to take them off the air"
	}
	return fmt.Errorf("%w: no backend carries the tag of %s, but %s "+
		"(fix the tag, add a backend with it, or remove the domain)", ErrConflict, strings.Join(hit, ", "), what)
}

// checkOrphans refuses a change that leaves a domain's enabled tag, which
// had backends, with none.
func checkOrphans(old, next *config.Config) error {
	had := tagIndex(old)
	has := tagIndex(next)
	var hit []string
	for i := range next.VirtualHosts {
		v := &next.VirtualHosts[i]
		if len(had[v.EnabledBackendsTag]) > 0 && len(has[v.EnabledBackendsTag]) == 0 {
			hit = append(hit, v.Domain)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	slices.Sort(hit)
	return fmt.Errorf("%w: this would leave %v with no backend (pass force to do it anyway)", ErrConflict, hit)
}
