package state

import (
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/logging"
	"fronttier/internal/store"
)

// BenchmarkApplyOneDomain10k: another node's change to one domain, put in
// force through Follow's path, with 10,000 domains and backends (the
// update's own copy of the configuration is made outside the timing).
func BenchmarkApplyOneDomain10k(b *testing.B) {
	s, err := New(bigConfig(10000), backend.NewRegistry(nil, nil), &nopPersister{}, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	base := s.Config()
	rev := store.Revision(1)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next := base.Clone()
		next.VirtualHosts[i%10000].EnabledBackendsTag = base.VirtualHosts[(i+20)%10000].EnabledBackendsTag
		rev++
		b.StartTimer()
		s.apply(store.Update{Snapshot: store.Snapshot{Config: next, Rev: rev}, Domains: []string{next.VirtualHosts[i%10000].Domain}})
	}
}

// BenchmarkCatchUp10k: a catch-up (a lost race, a watch's Full update)
// that finds one domain changed among 10,000, applied by what changed.
func BenchmarkCatchUp10k(b *testing.B) {
	s, err := New(bigConfig(10000), backend.NewRegistry(nil, nil), &nopPersister{}, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	base := s.Config()
	for i := 0; b.Loop(); i++ {
		next := base.Clone()
		next.VirtualHosts[i%10000].EnabledBackendsTag = base.VirtualHosts[(i+20)%10000].EnabledBackendsTag
		s.mu.Lock()
		if err := s.applyChangedLocked(next, false); err != nil {
			b.Fatal(err)
		}
		s.mu.Unlock()
	}
}
