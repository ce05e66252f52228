package route

import (
	"fmt"
	"testing"
)

func hosts(domains ...string) []*Host {
	hs := make([]*Host, len(domains))
	for i, d := range domains {
		hs[i] = &Host{Domain: d, Tag: "tag-" + d}
	}
	return hs
}

func TestLookup(t *testing.T) {
	t.Parallel()
	table := Build(hosts("example.com", "www.example.com", "*.example.com", "api.example.org", "*.apps.example.net", "localhost"))
	tests := []struct {
		name string
		host string
		// want is the Domain of the matching host; "" means no match.
		want string
	}{
		{name: "exact", host: "example.com", want: "example.com"},
		{name: "exact subdomain", host: "api.example.org", want: "api.example.org"},
		{name: "upper case", host: "EXAMPLE.com", want: "example.com"},
		{name: "mixed case subdomain", host: "Api.Example.ORG", want: "api.example.org"},
		{name: "with port", host: "example.com:8080", want: "example.com"},
		{name: "upper case with port", host: "API.EXAMPLE.ORG:443", want: "api.example.org"},
		{name: "trailing dot", host: "example.com.", want: "example.com"},
		{name: "trailing dot and port", host: "example.com.:80", want: "example.com"},
		{name: "single label", host: "localhost:9090", want: "localhost"},
		{name: "exact beats wildcard", host: "www.example.com", want: "www.example.com"},
		{name: "wildcard", host: "a.example.com", want: "*.example.com"},
		{name: "wildcard upper case", host: "SHOP.Example.Com", want: "*.example.com"},
		{name: "wildcard with port", host: "a.example.com:443", want: "*.example.com"},
		{name: "wildcard trailing dot", host: "a.example.com.", want: "*.example.com"},
		{name: "wildcard deeper suffix", host: "x.apps.example.net", want: "*.apps.example.net"},
		{name: "wildcard not apex", host: "apps.example.net", want: ""},
		{name: "wildcard one label only", host: "a.b.example.com", want: ""},
		{name: "wildcard empty label", host: ".example.com", want: ""},
		{name: "unknown", host: "example.net", want: ""},
		{name: "suffix of exact is not a match", host: "xexample.com", want: ""},
		{name: "parent of exact", host: "example.org", want: ""},
		{name: "empty", host: "", want: ""},
		{name: "IPv4", host: "192.0.2.1", want: ""},
		{name: "IPv4 with port", host: "192.0.2.1:80", want: ""},
		{name: "IPv6 literal", host: "[::1]", want: ""},
		{name: "IPv6 literal with port", host: "[::1]:80", want: ""},
		{name: "IPv6 with dots", host: "[::ffff:192.0.2.1]:443", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := table.Lookup(tt.host)
			got := ""
			if h != nil {
				got = h.Domain
				if h.Tag != "tag-"+h.Domain {
					t.Errorf("host %q has tag %q", h.Domain, h.Tag)
				}
			}
			if got != tt.want {
				t.Errorf("Lookup(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestLookupEmptyTables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		table *Table
	}{
		{name: "zero Table", table: &Table{}},
		{name: "built from nil", table: Build(nil)},
		{name: "exact only", table: Build(hosts("example.com"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, name := range []string{"a.example.com", "other.org", ""} {
				if h := tt.table.Lookup(name); h != nil {
					t.Errorf("Lookup(%q) = %q, want nil", name, h.Domain)
				}
			}
		})
	}
}

func TestHostsKeepsOrder(t *testing.T) {
	t.Parallel()
	hs := hosts("b.example", "*.a.example", "a.example")
	got := Build(hs).Hosts()
	if len(got) != len(hs) {
		t.Fatalf("Hosts() has %d hosts, want %d", len(got), len(hs))
	}
	for i := range hs {
		if got[i] != hs[i] {
			t.Errorf("Hosts()[%d] = %q, want %q", i, got[i].Domain, hs[i].Domain)
		}
	}
}

func TestNormalise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "example.com:8080", want: "example.com"},
		{in: "example.com:", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "EXAMPLE.COM.:443", want: "example.com"},
		{in: "[::1]", want: "[::1]"},
		{in: "[::1]:80", want: "[::1]"},
		{in: "[2001:DB8::1]:443", want: "[2001:db8::1]"},
		{in: "192.0.2.1:80", want: "192.0.2.1"},
		{in: "", want: ""},
		{in: ".", want: ""},
		{in: ":80", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := Normalise(tt.in); got != tt.want {
				t.Errorf("Normalise(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	table := Build(hosts("example.com", "*.example.com", "api.example.org"))
	tests := []struct {
		name string
		host string
		hit  bool
	}{
		{name: "exact hit", host: "example.com", hit: true},
		{name: "hit with port", host: "example.com:443", hit: true},
		{name: "hit with trailing dot", host: "api.example.org.", hit: true},
		{name: "wildcard hit", host: "shop.example.com:8443", hit: true},
		{name: "miss", host: "unknown.example.net", hit: false},
		{name: "wildcard miss", host: "a.b.example.com", hit: false},
		{name: "IPv6 miss", host: "[::1]:80", hit: false},
	}
	for _, tt := range tests {
		var h *Host
		allocs := testing.AllocsPerRun(1000, func() { h = table.Lookup(tt.host) })
		if (h != nil) != tt.hit {
			t.Errorf("%s: Lookup(%q) hit = %v, want %v", tt.name, tt.host, h != nil, tt.hit)
		}
		if allocs != 0 {
			t.Errorf("%s: Lookup(%q) does %v allocations, want 0", tt.name, tt.host, allocs)
		}
	}
}

func benchmarkLookup(b *testing.B, n int) {
	domains := make([]string, 0, n+1)
	for i := range n {
		domains = append(domains, fmt.Sprintf("site-%05d.example.com", i))
	}
	domains = append(domains, "*.apps.example.net")
	table := Build(hosts(domains...))
	names := []string{
		fmt.Sprintf("site-%05d.example.com", n/2), // exact hit
		fmt.Sprintf("site-%05d.example.com:443", n-1),
		"shop.apps.example.net", // wildcard hit
		"nowhere.example.org",   // miss
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if h := table.Lookup(names[i&3]); (h == nil) != (i&3 == 3) {
			b.Fatalf("Lookup(%q) = %v", names[i&3], h)
		}
		i++
	}
}

func BenchmarkLookup(b *testing.B)      { benchmarkLookup(b, 10000) }
func BenchmarkLookupSmall(b *testing.B) { benchmarkLookup(b, 5) }

func BenchmarkLookupUpperCase(b *testing.B) {
	table := Build(hosts("example.com"))
	b.ReportAllocs()
	for b.Loop() {
		if table.Lookup("EXAMPLE.com:443") == nil {
			b.Fatal("miss")
		}
	}
}
