package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/logging"
	"fronttier/internal/route"
)

// TestDerivedTableMatchesRebuild checks the incremental path of publish:
// after a random run of domain changes (switches, adds, edits, deletes)
// and backend changes, the table in force routes exactly like a table
// built from scratch for the same configuration.
func TestDerivedTableMatchesRebuild(t *testing.T) {
	t.Parallel()
	s, err := New(bigConfig(50), backend.NewRegistry(nil, nil), &nopPersister{}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 400 {
		d := fmt.Sprintf("d%05d.example.com", rng.IntN(60))
		tag := fmt.Sprintf("t%d", rng.IntN(6))
		switch rng.IntN(6) {
		case 0, 1:
			s.Switch(d, tag, true)
		case 2:
			s.AddDomain(config.VirtualHost{Domain: d, EnabledBackendsTag: tag, LBPolicy: []string{"", "least_conn"}[rng.IntN(2)]})
		case 3:
			s.DeleteDomain(d)
		case 4:
			s.UpdateDomain(d, func(v *config.VirtualHost) error { v.LBPolicy = "weighted"; return nil }, true)
		case 5:
			id := fmt.Sprintf("b%05d", rng.IntN(50))
			s.UpdateBackend(id, func(b *config.Backend) error { b.Tags = []string{tag}; return nil }, true)
		}
		fresh, err := New(s.Config(), backend.NewRegistry(nil, nil), &nopPersister{}, logging.Discard())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := describe(s.Table()), describe(fresh.Table()); !slices.Equal(got, want) {
			t.Fatalf("step %d: derived table\n%v\nfull rebuild\n%v", step, got, want)
		}
	}
}

// describe lists each host of t with its tag and pool members.
func describe(t *route.Table) []string {
	var out []string
	for _, h := range t.Hosts() {
		ids := make([]string, 0, h.Pool.Len())
		for _, b := range h.Pool.Backends {
			ids = append(ids, b.ID)
		}
		out = append(out, fmt.Sprintf("%s tag=%s redirect=%v pool=%v", h.Domain, h.Tag, h.Redirect, ids))
	}
	slices.Sort(out)
	return out
}
