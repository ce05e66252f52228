package route

import (
	"testing"

	"fronttier/internal/balance"
)

func TestDerive(t *testing.T) {
	t.Parallel()
	pool, _ := balance.NewPool("", nil, nil)
	a := &Host{Domain: "a.example.com", Tag: "a", Pool: pool}
	w := &Host{Domain: "*.w.example.com", Tag: "w", Pool: pool}
	old := Build([]*Host{a, w})

	a2 := &Host{Domain: "a.example.com", Tag: "b", Pool: pool}
	c := &Host{Domain: "c.example.com", Tag: "c", Pool: pool}
	n := old.Derive([]*Host{a2, c}, []string{"*.w.example.com"})

	if got := n.Lookup("a.example.com"); got != a2 {
		t.Errorf("replaced host: got %+v", got)
	}
	if n.Lookup("c.example.com") != c || n.Lookup("x.w.example.com") != nil {
		t.Error("added host missing or dropped wildcard still routed")
	}
	if len(n.Hosts()) != 2 {
		t.Errorf("hosts %d, want 2", len(n.Hosts()))
	}
	// The old table is untouched: requests routed with it finish there.
	if old.Lookup("a.example.com") != a || old.Lookup("x.w.example.com") != w || old.Lookup("c.example.com") != nil {
		t.Error("Derive modified the table it started from")
	}
}
