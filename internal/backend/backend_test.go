package backend

import (
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSetHealthTransitions(t *testing.T) {
	t.Parallel()
	type change struct{ from, to Health }
	var got []change
	r := NewRegistry(nil, func(_ *Backend, from, to Health) { got = append(got, change{from, to}) })
	b := r.Sync([]Spec{{ID: "a", Addr: "10.0.0.1:80"}})["a"]
	if b.Health() != Unknown || !b.Routable() {
		t.Fatalf("new backend: health %v, routable %v; want unknown, true", b.Health(), b.Routable())
	}
	steps := []struct {
		to           Health
		wantChanged  bool
		wantRoutable bool
	}{
		{to: Healthy, wantChanged: true, wantRoutable: true},
		{to: Healthy, wantChanged: false, wantRoutable: true},
		{to: Unhealthy, wantChanged: true, wantRoutable: false},
		{to: Unhealthy, wantChanged: false, wantRoutable: false},
		{to: Healthy, wantChanged: true, wantRoutable: true},
	}
	for i, s := range steps {
		if changed := b.SetHealth(s.to); changed != s.wantChanged {
			t.Errorf("step %d: SetHealth(%v) = %v, want %v", i, s.to, changed, s.wantChanged)
		}
		if b.Routable() != s.wantRoutable {
			t.Errorf("step %d: Routable = %v, want %v", i, b.Routable(), s.wantRoutable)
		}
	}
	want := []change{{Unknown, Healthy}, {Healthy, Unhealthy}, {Unhealthy, Healthy}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("onChange calls = %v, want %v", got, want)
	}
}

func TestHealthString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h    Health
		want string
	}{
		{h: Unknown, want: "unknown"},
		{h: Healthy, want: "healthy"},
		{h: Unhealthy, want: "unhealthy"},
		{h: Health(42), want: "unknown"},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("Health(%d).String() = %q, want %q", tt.h, got, tt.want)
		}
	}
}

func TestStatusAndActive(t *testing.T) {
	t.Parallel()
	var b Backend
	if s := b.Status(); !reflect.DeepEqual(s, Status{}) {
		t.Errorf("zero Status = %+v", s)
	}
	s := Status{LastCheck: time.Unix(1, 0), LastError: "refused", ConsecutiveFailures: 2}
	b.SetStatus(s)
	s.LastError = "changed after SetStatus"
	if got := b.Status(); got.LastError != "refused" || got.ConsecutiveFailures != 2 {
		t.Errorf("Status = %+v", got)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 1000 {
				b.Acquire()
				b.Release()
			}
		})
	}
	wg.Wait()
	if b.Active() != 0 {
		t.Errorf("Active = %d, want 0", b.Active())
	}
}

type closer struct {
	http.Handler
	closed atomic.Int32
}

func (c *closer) CloseIdleConnections() { c.closed.Add(1) }

type recordingWatcher struct {
	mu             sync.Mutex
	added, removed []string
}

func (w *recordingWatcher) Added(b *Backend) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.added = append(w.added, b.ID+"@"+b.Addr)
}

func (w *recordingWatcher) Removed(b *Backend) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removed = append(w.removed, b.ID+"@"+b.Addr)
}

func (w *recordingWatcher) take() (added, removed []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	added, removed = w.added, w.removed
	w.added, w.removed = nil, nil
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

func TestRegistrySync(t *testing.T) {
	t.Parallel()
	forwarders := make(map[*Backend]*closer)
	r := NewRegistry(func(b *Backend) http.Handler {
		c := &closer{}
		forwarders[b] = c
		return c
	}, nil)
	w := &recordingWatcher{}
	r.Watch(w)

	live := r.Sync([]Spec{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "b", Addr: "10.0.0.2:80"}})
	a, b := live["a"], live["b"]
	if a == nil || b == nil || a.Forward == nil || a.Forward != forwarders[a] {
		t.Fatalf("Sync = %v; forwarders not built", live)
	}
	if added, removed := w.take(); !reflect.DeepEqual(added, []string{"a@10.0.0.1:80", "b@10.0.0.2:80"}) || removed != nil {
		t.Errorf("watcher saw added %v removed %v", added, removed)
	}
	a.SetHealth(Unhealthy)

	steps := []struct {
		name        string
		specs       []Spec
		wantAdded   []string
		wantRemoved []string
		// wantSameA says a must be the same *Backend as before.
		wantSameA bool
	}{
		{name: "same specs", specs: []Spec{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "b", Addr: "10.0.0.2:80"}}, wantSameA: true},
		{name: "add c", specs: []Spec{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "b", Addr: "10.0.0.2:80"}, {ID: "c", Addr: "10.0.0.3:80"}},
			wantAdded: []string{"c@10.0.0.3:80"}, wantSameA: true},
		{name: "remove b", specs: []Spec{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "c", Addr: "10.0.0.3:80"}},
			wantRemoved: []string{"b@10.0.0.2:80"}, wantSameA: true},
		{name: "move a", specs: []Spec{{ID: "a", Addr: "10.0.0.9:80"}, {ID: "c", Addr: "10.0.0.3:80"}},
			wantAdded: []string{"a@10.0.0.9:80"}, wantRemoved: []string{"a@10.0.0.1:80"}},
	}
	for _, s := range steps {
		live := r.Sync(s.specs)
		added, removed := w.take()
		if !reflect.DeepEqual(added, s.wantAdded) || !reflect.DeepEqual(removed, s.wantRemoved) {
			t.Errorf("%s: added %v removed %v, want %v %v", s.name, added, removed, s.wantAdded, s.wantRemoved)
		}
		if same := live["a"] == a; same != s.wantSameA {
			t.Errorf("%s: a kept = %v, want %v", s.name, same, s.wantSameA)
		}
		if s.wantSameA && a.Health() != Unhealthy {
			t.Errorf("%s: a lost its health", s.name)
		}
		if len(live) != len(s.specs) {
			t.Errorf("%s: Sync returned %d backends, want %d", s.name, len(live), len(s.specs))
		}
		for _, sp := range s.specs {
			if got := r.Get(sp.ID); got != live[sp.ID] || got.Addr != sp.Addr {
				t.Errorf("%s: Get(%s) = %+v", s.name, sp.ID, got)
			}
		}
	}
	if !b.Removed() || forwarders[b].closed.Load() != 1 {
		t.Errorf("b: removed %v, idle connections closed %d times; want true, 1", b.Removed(), forwarders[b].closed.Load())
	}
	if !a.Removed() || forwarders[a].closed.Load() != 1 {
		t.Errorf("old a: removed %v, closed %d", a.Removed(), forwarders[a].closed.Load())
	}
	na := r.Get("a")
	if na.Removed() || na.Health() != Unknown {
		t.Errorf("new a: removed %v, health %v", na.Removed(), na.Health())
	}
	if r.Get("b") != nil {
		t.Error("Get(b) after removal")
	}
	var ids []string
	for _, b := range r.All() {
		ids = append(ids, b.ID)
	}
	if !reflect.DeepEqual(ids, []string{"a", "c"}) {
		t.Errorf("All() = %v, want [a c]", ids)
	}
	// A late watcher hears about every live backend.
	late := &recordingWatcher{}
	r.Watch(late)
	if added, _ := late.take(); !reflect.DeepEqual(added, []string{"a@10.0.0.9:80", "c@10.0.0.3:80"}) {
		t.Errorf("late watcher added %v", added)
	}
}

func TestRegistryNilFactory(t *testing.T) {
	t.Parallel()
	r := NewRegistry(nil, nil)
	b := r.Sync([]Spec{{ID: "a", Addr: "h:1"}})["a"]
	if b.Forward != nil {
		t.Error("Forward set without a factory")
	}
	r.Sync(nil) // removing a backend without a forwarder must not panic
	if !b.Removed() || len(r.All()) != 0 {
		t.Errorf("after Sync(nil): removed %v, All %v", b.Removed(), r.All())
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	var th Throttle
	t0 := time.Unix(1000, 0)
	if !th.Allow(t0, time.Second) {
		t.Fatal("the first event was held back")
	}
	if th.Allow(t0.Add(999*time.Millisecond), time.Second) {
		t.Error("a second event within the interval passed")
	}
	if !th.Allow(t0.Add(time.Second), time.Second) {
		t.Error("an event one interval later was held back")
	}
	// Many goroutines at the same instant: exactly one passes.
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if th.Allow(t0.Add(5*time.Second), time.Second) {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 1 {
		t.Errorf("%d of 16 concurrent events passed, want 1", passed.Load())
	}
}
