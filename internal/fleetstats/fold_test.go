package fleetstats

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pub is a publication of one domain's tag "b" with n requests, e errors.
func pub(inc string, since time.Time, n, e uint64) Publication {
	return Publication{Incarnation: inc, Domains: map[string]Domain{
		"x.test": {Since: since, Tags: map[string]Series{"b": {Requests: n, Errors: e, Latency: []uint64{n}}}},
	}}
}

func total(t *testing.T, a *Aggregator) (uint64, uint64) {
	t.Helper()
	s := a.Stats("x.test")["b"]
	var lat uint64
	for _, n := range s.Latency {
		lat += n
	}
	if lat != s.Requests {
		t.Fatalf("latency buckets sum to %d, requests %d", lat, s.Requests)
	}
	return s.Requests, s.Errors
}

// TestFold is the folding rule: increases are added; a new incarnation, a
// new series (Since) or a value that went down counts from zero; a node
// gone leaves its traffic in the totals; totals never go down.
func TestFold(t *testing.T) {
	t.Parallel()
	a := NewAggregator(nil, "/ft", nil)
	steps := []struct {
		name        string
		do          func()
		wantN, want uint64
	}{
		{"first value counts whole", func() { a.Fold("n1", pub("i1", t0, 10, 1)) }, 10, 1},
		{"another node adds", func() { a.Fold("n2", pub("j1", t0, 5, 0)) }, 15, 1},
		{"increase added", func() { a.Fold("n1", pub("i1", t0, 25, 3)) }, 30, 3},
		{"same value again adds nothing", func() { a.Fold("n1", pub("i1", t0, 25, 3)) }, 30, 3},
		{"reset within an incarnation counts from zero", func() { a.Fold("n1", pub("i1", t0, 4, 0)) }, 34, 3},
		{"then increases again", func() { a.Fold("n1", pub("i1", t0, 6, 1)) }, 36, 4},
		{"a new series (since) counts from zero", func() { a.Fold("n1", pub("i1", t0.Add(time.Hour), 7, 0)) }, 43, 4},
		{"a new incarnation counts from zero", func() { a.Fold("n1", pub("i2", t0.Add(time.Hour), 9, 2)) }, 52, 6},
		{"node gone: totals stay", func() { a.Gone("n2") }, 52, 6},
		{"the same process back adds only what is new", func() { a.Fold("n2", pub("j1", t0, 8, 0)) }, 55, 6},
		{"a domain dropped then published again is not counted twice", func() {
			a.Fold("n2", Publication{Incarnation: "j1"})
			a.Fold("n2", pub("j1", t0, 9, 0))
		}, 56, 6},
	}
	for _, s := range steps {
		s.do()
		if n, e := total(t, a); n != s.wantN || e != s.want {
			t.Fatalf("%s: totals %d requests, %d errors; want %d, %d", s.name, n, e, s.wantN, s.want)
		}
	}
	if got := a.Stats("other.test"); len(got) != 0 {
		t.Fatalf("a domain never published has totals %+v", got)
	}
}
