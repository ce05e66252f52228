package balance

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"fronttier/internal/backend"
)

// newBackends returns backends with the given ids, all in health Unknown
// (routable).
func newBackends(ids ...string) []*backend.Backend {
	bs := make([]*backend.Backend, len(ids))
	for i, id := range ids {
		bs[i] = &backend.Backend{ID: id, Addr: "10.0.0.1:" + fmt.Sprint(8000+i)}
	}
	return bs
}

// byID returns the backend with id.
func byID(bs []*backend.Backend, id string) *backend.Backend {
	for _, b := range bs {
		if b.ID == id {
			return b
		}
	}
	panic("no backend " + id)
}

// countPicks picks n times and counts the picks per id; a nil pick counts
// under "".
func countPicks(p Policy, n int, tried []*backend.Backend) map[string]int {
	counts := make(map[string]int)
	for range n {
		if b := p.Pick(tried); b != nil {
			counts[b.ID]++
		} else {
			counts[""]++
		}
	}
	return counts
}

// sequence picks n times and returns the ids in order.
func sequence(p Policy, n int) string {
	ids := make([]string, n)
	for i := range ids {
		if b := p.Pick(nil); b != nil {
			ids[i] = b.ID
		} else {
			ids[i] = "-"
		}
	}
	return strings.Join(ids, " ")
}

// policies builds each policy over the same backends with equal weights.
func policies(bs []*backend.Backend) map[string]Policy {
	return map[string]Policy{
		RoundRobinName: NewRoundRobin(bs),
		LeastConnName:  NewLeastConn(bs),
		WeightedName:   NewWeighted(bs, nil),
	}
}

func TestRoundRobinOrder(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	if got, want := sequence(NewRoundRobin(bs), 7), "a b c a b c a"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

// TestEvenDistribution checks that every policy with equal weights spreads
// picks exactly evenly over the routable backends, including when some
// backends are unhealthy (their share must be spread over the others, not
// dumped on their neighbour).
func TestEvenDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ids       []string
		unhealthy []string
		picks     int
		want      map[string]int
	}{
		{
			name:  "all healthy",
			ids:   []string{"a", "b", "c"},
			picks: 3000,
			want:  map[string]int{"a": 1000, "b": 1000, "c": 1000},
		},
		{
			name:      "middle unhealthy",
			ids:       []string{"a", "b", "c"},
			unhealthy: []string{"b"},
			picks:     3000,
			want:      map[string]int{"a": 1500, "c": 1500},
		},
		{
			name:      "two adjacent unhealthy",
			ids:       []string{"a", "b", "c", "d"},
			unhealthy: []string{"b", "c"},
			picks:     4000,
			want:      map[string]int{"a": 2000, "d": 2000},
		},
		{
			name:      "alternate unhealthy",
			ids:       []string{"a", "b", "c", "d", "e", "f"},
			unhealthy: []string{"a", "c", "e"},
			picks:     6000,
			want:      map[string]int{"b": 2000, "d": 2000, "f": 2000},
		},
		{
			name:      "one left",
			ids:       []string{"a", "b", "c"},
			unhealthy: []string{"a", "c"},
			picks:     100,
			want:      map[string]int{"b": 100},
		},
	}
	for _, tt := range tests {
		for _, name := range []string{RoundRobinName, LeastConnName, WeightedName} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				bs := newBackends(tt.ids...)
				for _, id := range tt.unhealthy {
					byID(bs, id).SetHealth(backend.Unhealthy)
				}
				p := policies(bs)[name]
				if got := countPicks(p, tt.picks, nil); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("counts = %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestHealthyAndUnknownAreRoutable(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	bs[0].SetHealth(backend.Healthy)
	bs[2].SetHealth(backend.Unhealthy)
	got := countPicks(NewRoundRobin(bs), 100, nil)
	if want := map[string]int{"a": 50, "b": 50}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
	// Recovery puts the backend back in rotation at once.
	bs[2].SetHealth(backend.Healthy)
	got = countPicks(NewRoundRobin(bs), 99, nil)
	if want := map[string]int{"a": 33, "b": 33, "c": 33}; !reflect.DeepEqual(got, want) {
		t.Errorf("after recovery counts = %v, want %v", got, want)
	}
}

func TestTriedIsHonoured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ids       []string
		unhealthy []string
		tried     []string
		want      map[string]int
	}{
		{name: "one tried", ids: []string{"a", "b", "c"}, tried: []string{"a"}, want: map[string]int{"b": 50, "c": 50}},
		{name: "two tried", ids: []string{"a", "b", "c"}, tried: []string{"a", "c"}, want: map[string]int{"b": 100}},
		{name: "all tried", ids: []string{"a", "b"}, tried: []string{"a", "b"}, want: map[string]int{"": 100}},
		{name: "tried and unhealthy", ids: []string{"a", "b", "c"}, unhealthy: []string{"b"}, tried: []string{"a"}, want: map[string]int{"c": 100}},
		{name: "rest unhealthy", ids: []string{"a", "b"}, unhealthy: []string{"b"}, tried: []string{"a"}, want: map[string]int{"": 100}},
	}
	for _, tt := range tests {
		for _, name := range []string{RoundRobinName, LeastConnName, WeightedName} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				bs := newBackends(tt.ids...)
				for _, id := range tt.unhealthy {
					byID(bs, id).SetHealth(backend.Unhealthy)
				}
				var tried []*backend.Backend
				for _, id := range tt.tried {
					tried = append(tried, byID(bs, id))
				}
				if got := countPicks(policies(bs)[name], 100, tried); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("counts = %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestEmptyPool(t *testing.T) {
	t.Parallel()
	for name, p := range policies(nil) {
		if b := p.Pick(nil); b != nil {
			t.Errorf("%s: Pick on no backends = %v, want nil", name, b.ID)
		}
	}
	for _, name := range []string{"", RoundRobinName, LeastConnName, WeightedName} {
		pool, err := NewPool(name, nil, nil)
		if err != nil {
			t.Fatalf("NewPool(%q): %v", name, err)
		}
		if b, panicked := pool.Pick(nil); b != nil || panicked {
			t.Errorf("%q: empty Pool.Pick = %v, %v; want nil, false", name, b, panicked)
		}
		if pool.Len() != 0 || pool.Healthy() != 0 {
			t.Errorf("%q: Len, Healthy = %d, %d; want 0, 0", name, pool.Len(), pool.Healthy())
		}
	}
}

func TestNewPoolUnknownPolicy(t *testing.T) {
	t.Parallel()
	if _, err := NewPool("random", newBackends("a"), nil); err == nil || !strings.Contains(err.Error(), "random") {
		t.Errorf("NewPool(random) error = %v, want one naming the policy", err)
	}
}

func TestPoolPanicMode(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{RoundRobinName, LeastConnName, WeightedName} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			bs := newBackends("a", "b", "c")
			pool, err := NewPool(policy, bs, []int{1, 1, 1})
			if err != nil {
				t.Fatal(err)
			}
			if b, panicked := pool.Pick(nil); b == nil || panicked {
				t.Fatalf("healthy pool: Pick = %v, %v; want a backend, false", b, panicked)
			}
			for _, b := range bs {
				b.SetHealth(backend.Unhealthy)
			}
			if pool.Healthy() != 0 || pool.Len() != 3 {
				t.Errorf("Healthy, Len = %d, %d; want 0, 3", pool.Healthy(), pool.Len())
			}
			// Panic mode still spreads load over all members.
			counts := make(map[string]int)
			for range 300 {
				b, panicked := pool.Pick(nil)
				if b == nil || !panicked {
					t.Fatalf("all unhealthy: Pick = %v, %v; want a backend, true", b, panicked)
				}
				counts[b.ID]++
			}
			if want := map[string]int{"a": 100, "b": 100, "c": 100}; !reflect.DeepEqual(counts, want) {
				t.Errorf("panic picks = %v, want %v", counts, want)
			}
			// Panic mode honours tried.
			for range 10 {
				b, panicked := pool.Pick([]*backend.Backend{bs[0], bs[2]})
				if b != bs[1] || !panicked {
					t.Fatalf("panic with a, c tried: Pick = %v, %v; want b, true", b, panicked)
				}
			}
			if b, panicked := pool.Pick(bs); b != nil || panicked {
				t.Errorf("all tried: Pick = %v, %v; want nil, false", b, panicked)
			}
			// A healthy backend ends panic mode.
			bs[2].SetHealth(backend.Healthy)
			for range 10 {
				if b, panicked := pool.Pick(nil); b != bs[2] || panicked {
					t.Fatalf("c healthy again: Pick = %v, %v; want c, false", b, panicked)
				}
			}
			// A routable backend already tried and the rest unhealthy:
			// fall back to an untried unhealthy one, in panic.
			if b, panicked := pool.Pick([]*backend.Backend{bs[2]}); b == nil || b == bs[2] || !panicked {
				t.Errorf("c tried, rest unhealthy: Pick = %v, %v; want a or b, true", b, panicked)
			}
		})
	}
}

func TestLeastConn(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	p := NewLeastConn(bs)
	acquire := func(b *backend.Backend, n int) {
		for range n {
			b.Acquire()
		}
	}
	acquire(bs[0], 3)
	acquire(bs[1], 1)
	for range 10 {
		if got := p.Pick(nil); got != bs[2] {
			t.Fatalf("Pick = %s, want c (0 active)", got.ID)
		}
	}
	acquire(bs[2], 2)
	if got := p.Pick(nil); got != bs[1] {
		t.Fatalf("Pick = %s, want b (1 active)", got.ID)
	}
	// The least loaded backend is skipped when unhealthy or tried.
	bs[1].SetHealth(backend.Unhealthy)
	if got := p.Pick(nil); got != bs[2] {
		t.Fatalf("b unhealthy: Pick = %s, want c (2 active)", got.ID)
	}
	if got := p.Pick([]*backend.Backend{bs[2]}); got != bs[0] {
		t.Fatalf("b unhealthy, c tried: Pick = %s, want a", got.ID)
	}
	bs[1].SetHealth(backend.Healthy)
	// Release brings a backend back to the front.
	for range 3 {
		bs[0].Release()
	}
	if bs[0].Active() != 0 {
		t.Fatalf("Active = %d after releases", bs[0].Active())
	}
	if got := p.Pick(nil); got != bs[0] {
		t.Fatalf("Pick = %s, want a (0 active)", got.ID)
	}
	// Simulated traffic where each pick holds its request: load stays level.
	for _, b := range bs {
		for b.Active() > 0 {
			b.Release()
		}
	}
	for range 300 {
		p.Pick(nil).Acquire()
	}
	for _, b := range bs {
		if b.Active() != 100 {
			t.Errorf("%s: Active = %d after 300 held picks, want 100", b.ID, b.Active())
		}
	}
}

func TestWeightedSmoothOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{name: "nginx 5 1 1", weights: []int{5, 1, 1}, want: "a a b a c a a"},
		{name: "equal", weights: []int{1, 1, 1}, want: "a b c"},
		{name: "zero means one", weights: []int{0, 0, 0}, want: "a b c"},
		{name: "missing means one", weights: nil, want: "a b c"},
		{name: "common factor", weights: []int{10, 2, 2}, want: "a a b a c a a"},
		{name: "2 1", weights: []int{2, 1}, want: "a b a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs := newBackends("a", "b", "c")
			if len(tt.weights) == 2 {
				bs = bs[:2]
			}
			w := NewWeighted(bs, tt.weights)
			n := strings.Count(tt.want, " ") + 1
			if got := sequence(w, n); got != tt.want {
				t.Errorf("first %d picks = %q, want %q", n, got, tt.want)
			}
			// The schedule repeats.
			if got := sequence(w, n); got != tt.want {
				t.Errorf("second round = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWeightedProportions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		picks   int
		want    map[string]int
	}{
		{name: "5 1 1", weights: []int{5, 1, 1}, picks: 7000, want: map[string]int{"a": 5000, "b": 1000, "c": 1000}},
		{name: "canary 95 5", weights: []int{95, 5}, picks: 10000, want: map[string]int{"a": 9500, "b": 500}},
		{name: "1000 1", weights: []int{1000, 1}, picks: 100100, want: map[string]int{"a": 100000, "b": 100}},
		{name: "3 2 1", weights: []int{3, 2, 1}, picks: 6000, want: map[string]int{"a": 3000, "b": 2000, "c": 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs := newBackends("a", "b", "c")[:len(tt.weights)]
			if got := countPicks(NewWeighted(bs, tt.weights), tt.picks, nil); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWeightedLargeWeights checks that a weight sum beyond the schedule
// limit keeps the proportions approximately.
func TestWeightedLargeWeights(t *testing.T) {
	t.Parallel()
	const n = 200
	ids := make([]string, n)
	weights := make([]int, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%03d", i)
		weights[i] = 1000
	}
	weights[0] = 500
	bs := newBackends(ids...)
	w := NewWeighted(bs, weights)
	if len(w.schedule) > maxSchedule {
		t.Fatalf("schedule has %d entries, more than %d", len(w.schedule), maxSchedule)
	}
	counts := countPicks(w, len(w.schedule), nil)
	if len(counts) != n {
		t.Fatalf("%d backends picked, want %d", len(counts), n)
	}
	if a, b := counts["b000"], counts["b001"]; a*2 < b-2 || a*2 > b+2 {
		t.Errorf("weight 500 got %d picks, weight 1000 got %d; want about half", a, b)
	}
}

func TestWeightedSkipsUnhealthy(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	w := NewWeighted(bs, []int{5, 1, 1})
	bs[0].SetHealth(backend.Unhealthy)
	// b and c have equal weight, so they share a's traffic equally.
	if got, want := countPicks(w, 7000, nil), map[string]int{"b": 3500, "c": 3500}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
}

func TestPoolPickUsesPolicy(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	pool, err := NewPool(WeightedName, bs, []int{5, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 7 {
		b, panicked := pool.Pick(nil)
		if panicked {
			t.Fatal("panicked with healthy backends")
		}
		ids = append(ids, b.ID)
	}
	if got, want := strings.Join(ids, " "), "a a b a c a a"; got != want {
		t.Errorf("weighted pool order = %q, want %q", got, want)
	}
	if pool.Len() != 3 || pool.Healthy() != 3 {
		t.Errorf("Len, Healthy = %d, %d; want 3, 3", pool.Len(), pool.Healthy())
	}
}

func TestConcurrentPicks(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		perG       = 10000
	)
	for _, name := range []string{RoundRobinName, WeightedName} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bs := newBackends("a", "b", "c", "d")
			pool, err := NewPool(name, bs, nil)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			total := make(map[string]int)
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					local := make(map[string]int)
					for range perG {
						b, _ := pool.Pick(nil)
						local[b.ID]++
					}
					mu.Lock()
					for k, v := range local {
						total[k] += v
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			want := map[string]int{"a": 20000, "b": 20000, "c": 20000, "d": 20000}
			if !reflect.DeepEqual(total, want) {
				t.Errorf("counts = %v, want %v", total, want)
			}
		})
	}
	t.Run(LeastConnName, func(t *testing.T) {
		t.Parallel()
		bs := newBackends("a", "b", "c", "d")
		p := NewLeastConn(bs)
		var wg sync.WaitGroup
		var picks [4]int64
		var mu sync.Mutex
		for range goroutines {
			wg.Go(func() {
				var local [4]int64
				for range perG {
					b := p.Pick(nil)
					b.Acquire()
					local[b.ID[0]-'a']++
					b.Release()
				}
				mu.Lock()
				for i := range local {
					picks[i] += local[i]
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		var sum int64
		for i, n := range picks {
			sum += n
			if n == 0 {
				t.Errorf("backend %c never picked", 'a'+i)
			}
		}
		if sum != goroutines*perG {
			t.Errorf("total picks = %d, want %d", sum, goroutines*perG)
		}
		for _, b := range bs {
			if b.Active() != 0 {
				t.Errorf("%s: Active = %d after all releases", b.ID, b.Active())
			}
		}
	})
}

func TestPickDoesNotAllocate(t *testing.T) {
	bs := newBackends("a", "b", "c", "d")
	bs[1].SetHealth(backend.Unhealthy)
	tried := []*backend.Backend{bs[0]}
	all := newBackends("x", "y")
	for _, b := range all {
		b.SetHealth(backend.Unhealthy)
	}
	for _, name := range []string{RoundRobinName, LeastConnName, WeightedName} {
		pool, err := NewPool(name, bs, []int{5, 1, 1, 1})
		if err != nil {
			t.Fatal(err)
		}
		panicPool, err := NewPool(name, all, nil)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			pick func()
		}{
			{name: "no tried", pick: func() { pool.Pick(nil) }},
			{name: "with tried", pick: func() { pool.Pick(tried) }},
			{name: "panic mode", pick: func() { panicPool.Pick(nil) }},
		}
		for _, tt := range tests {
			if allocs := testing.AllocsPerRun(1000, tt.pick); allocs != 0 {
				t.Errorf("%s %s: %v allocs per Pick, want 0", name, tt.name, allocs)
			}
		}
	}
}

func benchmarkPick(b *testing.B, policy string) {
	bs := newBackends("a", "b", "c", "d", "e", "f", "g", "h")
	bs[3].SetHealth(backend.Unhealthy)
	pool, err := NewPool(policy, bs, []int{5, 1, 1, 1, 2, 2, 3, 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, _ := pool.Pick(nil); got == nil {
				b.Fatal("nil pick")
			}
		}
	})
}

func BenchmarkRoundRobinPick(b *testing.B) { benchmarkPick(b, RoundRobinName) }
func BenchmarkLeastConnPick(b *testing.B)  { benchmarkPick(b, LeastConnName) }
func BenchmarkWeightedPick(b *testing.B)   { benchmarkPick(b, WeightedName) }
