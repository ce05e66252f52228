// Package state is the authoritative set of domains and backends a node
// serves. It applies each change under one mutex: build the next
// configuration, validate it, write it to its store (store.Store: the
// configuration file, or etcd for a fleet) with a compare-and-swap on the
// revision it was built from, then publish a new route table with one
// atomic swap. A change that fails any step changes nothing. A lost
// compare-and-swap (the store changed meanwhile: a hand edit of the file,
// another node) loads the newer state, puts it in force and builds the
// change again on top of it, so no update is lost. Changes made elsewhere
// arrive through Follow, by the same path.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/config"
	"fronttier/internal/route"
	"fronttier/internal/store"
)

// Errors a change can fail with; the API maps them to HTTP statuses.
var (
	ErrInvalid  = errors.New("invalid")        // 400
	ErrNotFound = errors.New("not found")      // 404
	ErrExists   = errors.New("already exists") // 409
	ErrConflict = errors.New("conflict")       // 409: refused to protect traffic
	ErrPersist  = errors.New("persist")        // 500: nothing was changed
	// ErrUnavailable: the store cannot be reached (etcd down); nothing was
	// changed and nothing is acknowledged.
	ErrUnavailable = errors.New("store unavailable") // 503
)

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
	// Applied is told the store revision of each configuration put in
	// force (after Published), for the fleet to know how far each node
	// is.
	Applied func(rev store.Revision)
	// Followed is told about each change made elsewhere (another node, a
	// hand edit) once it is in force, after Applied.
	Followed func(u store.Update)
	// Retried is told each time a change lost its compare-and-swap and
	// was built again on a newer state.
	Retried func()
	// Reloaded is told about each configuration read from the store and
	// put in force (a reload, a hand edit, another node's change), after
	// Published: settings outside the store (log level, health checks)
	// follow it.
	Reloaded func(old, next *config.Config)
}

// Store holds the current configuration and the route table built from it.
// Reads (Config, Table) are lock-free atomic loads; changes are serialised
// by mu.
type Store struct {
	log *slog.Logger
	st  store.Store
	reg *backend.Registry

	mu           sync.Mutex                // serialises changes; held across validate, write, publish
	rev          store.Revision            // guarded by mu: the store's revision of the configuration in force
	writeTimeout time.Duration             // guarded by mu; 0 = defaultWriteTimeout
	advanced     chan struct{}             // guarded by mu: closed when rev next changes; nil until awaited
	hooks        Hooks                     // guarded by mu
	pools        map[poolKey]*balance.Pool // guarded by mu: the pools of the table in force
	cfg          atomic.Pointer[config.Config]
	table        atomic.Pointer[route.Table]
}

// New returns a store serving cfg (which must be valid) and publishes its
// route table. reg holds the live backends; st receives every accepted
// change. cfg's revision in st is unknown: the first change finds out.
func New(cfg *config.Config, reg *backend.Registry, st store.Store, log *slog.Logger) (*Store, error) {
	return NewAt(store.Snapshot{Config: cfg}, reg, st, log)
}

// NewAt is New for a snapshot loaded from st.
func NewAt(snap store.Snapshot, reg *backend.Registry, st store.Store, log *slog.Logger) (*Store, error) {
	s := &Store{log: log, st: st, reg: reg, rev: snap.Rev}
	c := snap.Config.Clone()
	c.Sort()
	if err := s.publish(nil, c, scope{}); err != nil {
		return nil, err
	}
	return s, nil
}

// setRevLocked records the revision of the configuration in force.
func (s *Store) setRevLocked(rev store.Revision) {
	s.rev = rev
	if s.advanced != nil {
		close(s.advanced)
		s.advanced = nil
	}
	if s.hooks.Applied != nil {
		s.hooks.Applied(rev)
	}
}

// followWait is how long a change that lost its compare-and-swap waits
// for Follow to bring the newer state before loading it whole.
const followWait = 250 * time.Millisecond

// awaitNewerLocked releases the lock until a revision after rev is in
// force (Follow applied it) or followWait passes, then for pause more, and
// reports whether a newer revision is in force. It returns with the lock
// held.
func (s *Store) awaitNewerLocked(ctx context.Context, rev store.Revision, pause time.Duration) bool {
	if s.advanced == nil {
		s.advanced = make(chan struct{})
	}
	advanced := s.advanced
	s.mu.Unlock()
	t := time.NewTimer(followWait)
	select {
	case <-advanced:
	case <-t.C:
	case <-ctx.Done():
	}
	if pause > 0 {
		t.Reset(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	t.Stop()
	s.mu.Lock()
	return s.rev > rev
}

// jitter is a random pause before a change's try-th attempt: writers that
// keep losing the same races (several nodes writing at once) stop moving
// in step. Up to 2^try ms, at most 100 ms; none for the first retries.
func jitter(try int) time.Duration {
	if try < 3 {
		return 0
	}
	limit := min(time.Duration(1)<<min(try, 7)*time.Millisecond, 100*time.Millisecond)
	return rand.N(limit)
}

// SetWriteTimeout bounds each change's writes to the store (default 10s):
// with etcd, how long an API write waits for an unreachable store before
// answering 503. Call it before the store is used.
func (s *Store) SetWriteTimeout(d time.Duration) {
	s.mu.Lock()
	s.writeTimeout = d
	s.mu.Unlock()
}

// Revision returns the store revision of the configuration in force.
func (s *Store) Revision() store.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
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
	// domains, when not nil, are the only virtual hosts the change
	// added, edited or removed; the change must not touch backends at all
	// (the list is shared with the configuration in force).
	domains []string
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
	wt := s.writeTimeout
	if wt <= 0 {
		wt = defaultWriteTimeout
	}
	// Each attempt has the whole write timeout: a lost race is no reason
	// to refuse the next attempt sooner.
	for try := 1; ; try++ {
		old := s.cfg.Load()
		var next *config.Config
		if sc.domains != nil {
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
		ctx, cancel := context.WithTimeout(context.Background(), wt)
		rev, err := s.st.CompareAndSwap(ctx, store.Snapshot{Config: old, Rev: s.rev}, next)
		cancel()
		switch {
		case err == nil:
			s.setRevLocked(rev)
			if err := s.publish(old, next, sc); err != nil {
				// The store holds next, which validated; building its
				// table cannot fail for a valid configuration.
				return nil, fmt.Errorf("publish: %w", err)
			}
			return next, nil
		case errors.Is(err, store.ErrStale) && try < maxTries:
			// Changed meanwhile (a hand edit, another node): put that in
			// force, then build the change again on top of it. Follow
			// brings the newer state most cheaply (one change, applied
			// incrementally): let it, for a moment, with the lock released;
			// if it does not, load the whole state.
			if s.hooks.Retried != nil {
				s.hooks.Retried()
			}
			ctx, cancel := context.WithTimeout(context.Background(), wt)
			if !s.awaitNewerLocked(ctx, s.rev, jitter(try)) {
				if err := s.catchUpLocked(ctx); err != nil {
					cancel()
					return nil, err
				}
			}
			cancel()
		case errors.Is(err, store.ErrStale):
			return nil, fmt.Errorf("%w: the stored configuration kept changing; try again: %w", ErrConflict, err)
		case errors.Is(err, store.ErrUnavailable):
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		default:
			return nil, fmt.Errorf("%w: %w", ErrPersist, err)
		}
	}
}

// defaultWriteTimeout bounds one change's writes to the store; maxTries
// bounds how often a change is built again after losing a
// compare-and-swap.
const (
	defaultWriteTimeout = 10 * time.Second
	maxTries            = 32
)

// catchUpLocked loads the store's newer state and puts it in force before
// a change is built again. A state that cannot be put in force (a hand
// edit that does not load, or that would take a serving domain off the
// air) refuses the change: ErrConflict, naming the problem, and nothing is
// written over it.
func (s *Store) catchUpLocked(ctx context.Context) error {
	snap, err := s.st.Load(ctx)
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	if err := s.applyChangedLocked(snap.Config, false); err != nil {
		return fmt.Errorf("%w: %s changed (revision %d) and the change cannot be applied, so nothing is written over it: %w",
			ErrConflict, store.Describe(s.st), snap.Rev, err)
	}
	s.setRevLocked(snap.Rev)
	s.log.Info("stored configuration changed meanwhile (a hand edit, or another node): applied before this change", "revision", snap.Rev)
	return nil
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

// checkServingHost is checkServing for one host of next, without building
// the tag index: it costs one pass over the backends.
func checkServingHost(old, next *config.Config, v *config.VirtualHost) error {
	was := old.Host(v.Domain)
	if was == nil || !carried(old, was.EnabledBackendsTag) || carried(next, v.EnabledBackendsTag) {
		return nil
	}
	return fmt.Errorf("%w: no backend carries the tag of %s (tag %q), but it serves now; refusing to take it off the air "+
		"(fix the tag, add a backend with it, or remove the domain)", ErrConflict, v.Domain, v.EnabledBackendsTag)
}

// carried reports whether a backend of c carries tag.
func carried(c *config.Config, tag string) bool {
	for i := range c.Backends {
		if c.Backends[i].HasTag(tag) {
			return true
		}
	}
	return false
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
