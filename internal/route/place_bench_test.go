package route

import (
	"fmt"
	"net/http"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
)

// placeCase is one kind of request the data path places: the host it
// asks for and what it carries.
type placeCase struct {
	name string
	host string
	r    *http.Request
}

// placeTable returns a table of 10,000 hosts without a split, plus
// "canary.example.com" (a 10% canary by cookie, with backend affinity and
// an override), "user.example.com" (by header) and "ip.example.com" (by
// client address), and the requests each benchmark case sends.
func placeTable(tb testing.TB) (*Table, []placeCase) {
	tb.Helper()
	pool := func(ids ...string) *balance.Pool {
		bs := make([]*backend.Backend, len(ids))
		for i, id := range ids {
			bs[i] = &backend.Backend{ID: id, Addr: "127.0.0.1:1"}
		}
		p, err := balance.NewPool("", bs, nil)
		if err != nil {
			tb.Fatal(err)
		}
		return p
	}
	a, b := pool("a1", "a2", "a3"), pool("b1", "b2")
	hs := make([]*Host, 0, 10003)
	for i := range 10000 {
		hs = append(hs, &Host{Domain: fmt.Sprintf("site-%05d.example.com", i), Tag: "a", Pool: a})
	}
	split := func(key KeyKind) *Split {
		return &Split{Canary: b, CanaryTag: "b", Percent: 10, Threshold: 1000, Key: key, Header: "X-User-Id", Affinity: key == KeyCookie,
			Overrides: []Override{{Kind: MatchHeader, Name: "X-Canary", Value: "1", Tag: "b", Pool: b}}}
	}
	hs = append(hs,
		&Host{Domain: "canary.example.com", Tag: "a", Pool: a, Split: split(KeyCookie)},
		&Host{Domain: "user.example.com", Tag: "a", Pool: a, Split: split(KeyHeader)},
		&Host{Domain: "ip.example.com", Tag: "a", Pool: a, Split: split(KeyIP)},
	)
	cookie := "_ga=GA1.2.3; fronttier_bucket=412; fronttier_backend=" + balance.AffinityKey("b2") + "; theme=dark"
	return Build(hs), []placeCase{
		{"no split", "site-05000.example.com", req("192.0.2.7:5555", "")},
		{"cookie", "canary.example.com", req("192.0.2.7:5555", "", "Cookie: "+cookie)},
		{"header", "user.example.com", req("192.0.2.7:5555", "", "X-User-Id: user-12345")},
		{"ip", "ip.example.com", req("192.0.2.7:5555", "")},
		{"override", "canary.example.com", req("192.0.2.7:5555", "", "X-Canary: 1", "Cookie: "+cookie)},
	}
}

// place is the data path's placement: lookup, decision, pick (with the
// client's preferred backend when the host has affinity).
func place(t *Table, c placeCase) *backend.Backend {
	h := t.Lookup(c.host)
	if h.Split == nil {
		b, _ := h.Pool.Pick(nil)
		return b
	}
	d := h.Decide(c.r)
	if h.Split.Affinity {
		key, _ := Cookie(c.r.Header, AffinityCookie)
		b, _, _ := d.Pool.PickAffine(key, nil)
		return b
	}
	b, _ := d.Pool.Pick(nil)
	return b
}

// TestPlaceDoesNotAllocate: a client that has its cookies costs no
// allocation to place, whatever the host's split.
func TestPlaceDoesNotAllocate(t *testing.T) {
	table, cases := placeTable(t)
	for _, c := range cases {
		if b := place(table, c); b == nil {
			t.Fatalf("%s: no backend", c.name)
		}
		if allocs := testing.AllocsPerRun(1000, func() { place(table, c) }); allocs != 0 {
			t.Errorf("%s: %v allocations per placement, want 0", c.name, allocs)
		}
	}
	cookie := cases[1]
	if b := place(table, cookie); b.ID != "b2" {
		t.Errorf("bucket 412 with affinity for b2 went to %s", b.ID)
	}
}

// BenchmarkPlace measures route lookup, split and pick per kind of host;
// "no split" is the path of a host without canary or overrides, which
// must cost what Lookup and Pick cost alone.
func BenchmarkPlace(b *testing.B) {
	table, cases := placeTable(b)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if place(table, c) == nil {
					b.Fatal("no backend")
				}
			}
		})
	}
}
