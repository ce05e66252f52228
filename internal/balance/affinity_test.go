package balance

import (
	"testing"

	"fronttier/internal/backend"
)

func TestAffinityKey(t *testing.T) {
	t.Parallel()
	a, b := AffinityKey("web-1"), AffinityKey("web-2")
	if len(a) != 16 || a == b || a != AffinityKey("web-1") {
		t.Fatalf("AffinityKey: %q, %q: want 16 stable hex digits, different per id", a, b)
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			t.Fatalf("AffinityKey(web-1) = %q: not lower-case hex", a)
		}
	}
}

func TestPickAffine(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{RoundRobinName, LeastConnName, WeightedName} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			bs := newBackends("a", "b", "c")
			pool, err := NewPool(policy, bs, nil)
			if err != nil {
				t.Fatal(err)
			}
			other := newBackends("z")
			tests := []struct {
				name     string
				key      string
				down     string // a backend made unhealthy first
				tried    []*backend.Backend
				wantID   string // "" means any but the listed
				notID    string
				wantKept bool
			}{
				{name: "kept", key: AffinityKey("b"), wantID: "b", wantKept: true},
				{name: "kept again", key: AffinityKey("b"), wantID: "b", wantKept: true},
				{name: "no cookie", key: "", notID: "none", wantKept: false},
				{name: "not a member", key: AffinityKey("z"), notID: "z", wantKept: false},
				{name: "garbage", key: "not-a-key", notID: "none", wantKept: false},
				{name: "unhealthy", key: AffinityKey("c"), down: "c", notID: "c", wantKept: false},
				{name: "tried", key: AffinityKey("a"), tried: []*backend.Backend{bs[0]}, notID: "a", wantKept: false},
			}
			for _, tt := range tests {
				for _, b := range bs {
					b.SetHealth(backend.Healthy)
				}
				if tt.down != "" {
					byID(bs, tt.down).SetHealth(backend.Unhealthy)
				}
				b, panicked, kept := pool.PickAffine(tt.key, tt.tried)
				switch {
				case b == nil || panicked:
					t.Errorf("%s: PickAffine = %v, panicked %v", tt.name, b, panicked)
				case kept != tt.wantKept:
					t.Errorf("%s: kept = %v, want %v", tt.name, kept, tt.wantKept)
				case tt.wantID != "" && b.ID != tt.wantID:
					t.Errorf("%s: picked %s, want %s", tt.name, b.ID, tt.wantID)
				case b.ID == tt.notID:
					t.Errorf("%s: picked %s, which it must not", tt.name, b.ID)
				}
				if got := pool.AffinityKey(b); got != AffinityKey(b.ID) {
					t.Errorf("%s: pool.AffinityKey(%s) = %q, want %q", tt.name, b.ID, got, AffinityKey(b.ID))
				}
			}
			if got := pool.AffinityKey(other[0]); got != "" {
				t.Errorf("AffinityKey of a non-member = %q, want empty", got)
			}
		})
	}
}

// TestPickAffineSpreadsNewClients checks that clients without a cookie are
// balanced by the policy, not all sent to one backend.
func TestPickAffineSpreadsNewClients(t *testing.T) {
	t.Parallel()
	bs := newBackends("a", "b", "c")
	pool, err := NewPool(RoundRobinName, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 300 {
		b, _, _ := pool.PickAffine("", nil)
		counts[b.ID]++
	}
	for _, b := range bs {
		if counts[b.ID] != 100 {
			t.Errorf("new clients per backend = %v, want 100 each", counts)
			break
		}
	}
}

func TestPickAffineDoesNotAllocate(t *testing.T) {
	bs := newBackends("a", "b", "c", "d")
	pool, err := NewPool(RoundRobinName, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := AffinityKey("c")
	for _, tt := range []struct {
		name string
		key  string
	}{{"kept", key}, {"no cookie", ""}, {"unknown", "0123456789abcdef"}} {
		if allocs := testing.AllocsPerRun(1000, func() { pool.PickAffine(tt.key, nil) }); allocs != 0 {
			t.Errorf("%s: %v allocs per PickAffine, want 0", tt.name, allocs)
		}
	}
}

func BenchmarkPickAffine(b *testing.B) {
	bs := newBackends("a", "b", "c", "d", "e", "f", "g", "h")
	pool, err := NewPool(RoundRobinName, bs, nil)
	if err != nil {
		b.Fatal(err)
	}
	key := AffinityKey("e")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, _, kept := pool.PickAffine(key, nil); got == nil || !kept {
				b.Fatal("preference not kept")
			}
		}
	})
}
