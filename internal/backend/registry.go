package backend

import (
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Spec is what identifies a backend in the configuration.
type Spec struct {
	ID   string
	Addr string
}

// Factory builds the forwarder for a new backend.
type Factory func(b *Backend) http.Handler

// Watcher is told about backends entering and leaving the registry, after
// the fact (health checkers start and stop on it).
type Watcher interface {
	Added(b *Backend)
	Removed(b *Backend)
}

// Registry is the set of live backends keyed by id. It keeps each Backend
// (and so its health and pooled connections) for as long as its id and
// address stay the same across Sync calls. Its lock is taken only by
// configuration changes, never by the request path.
type Registry struct {
	newForward Factory
	onChange   func(*Backend, Health, Health)

	mu       sync.Mutex // guards byID and watchers
	byID     map[string]*Backend
	watchers []Watcher
}

// NewRegistry returns an empty registry. forward builds each backend's
// forwarder; onChange, if not nil, is called on every health transition.
func NewRegistry(forward Factory, onChange func(b *Backend, from, to Health)) *Registry {
	return &Registry{newForward: forward, onChange: onChange, byID: make(map[string]*Backend)}
}

// Watch adds w to the watchers and tells it about every backend already
// registered.
func (r *Registry) Watch(w Watcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers = append(r.watchers, w)
	for _, b := range r.byID {
		w.Added(b)
	}
}

// Sync makes the registry hold exactly specs and returns the live backends
// by id. Backends whose id and address are unchanged are kept as they are;
// the others are created (and watchers told), and those no longer listed or
// whose address changed are removed (watchers told, idle connections
// closed).
func (r *Registry) Sync(specs []Spec) map[string]*Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]*Backend, len(specs))
	var added []*Backend
	for _, s := range specs {
		if b, ok := r.byID[s.ID]; ok && b.Addr == s.Addr {
			next[s.ID] = b
			continue
		}
		b := &Backend{ID: s.ID, Addr: s.Addr, onChange: r.onChange}
		if r.newForward != nil {
			b.Forward = r.newForward(b)
		}
		next[s.ID] = b
		added = append(added, b)
	}
	var removed []*Backend
	for id, b := range r.byID {
		if next[id] != b {
			removed = append(removed, b)
		}
	}
	r.byID = next
	for _, b := range removed {
		b.close()
		for _, w := range r.watchers {
			w.Removed(b)
		}
	}
	for _, b := range added {
		for _, w := range r.watchers {
			w.Added(b)
		}
	}
	return next
}

// Get returns the live backend with id, or nil.
func (r *Registry) Get(id string) *Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// All returns the live backends sorted by id.
func (r *Registry) All() []*Backend {
	r.mu.Lock()
	all := make([]*Backend, 0, len(r.byID))
	for _, b := range r.byID {
		all = append(all, b)
	}
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b *Backend) int { return strings.Compare(a.ID, b.ID) })
	return all
}
