package route

import (
	"strconv"
	"strings"
	"testing"

	"fronttier/internal/config"
)

// upperASCII upper-cases the ASCII letters of s and nothing else.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// FuzzNormalise checks that Normalise never panics, never returns an ASCII
// upper-case letter, never grows its input, and ignores ASCII case. Seeds:
// testdata/fuzz/FuzzNormalise.
func FuzzNormalise(f *testing.F) {
	f.Add("Example.COM.:8080")
	f.Fuzz(func(t *testing.T, host string) {
		got := Normalise(host)
		if len(got) > len(host) {
			t.Errorf("Normalise(%q) = %q, longer than its input", host, got)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
			t.Errorf("Normalise(%q) = %q has upper case", host, got)
		}
		if up := Normalise(upperASCII(host)); up != got {
			t.Errorf("Normalise(%q) = %q but Normalise(%q) = %q", host, got, upperASCII(host), up)
		}
	})
}

// FuzzLookup builds a table with name (when it is a valid domain) beside
// fixed exact and wildcard hosts, and checks that Lookup never panics, that
// upper-casing the ASCII letters of probe does not change its answer, and
// that name is found as itself with a trailing dot, a port, or both, in any
// ASCII case. Seeds: testdata/fuzz/FuzzLookup.
func FuzzLookup(f *testing.F) {
	f.Add("shop.example.com", "SHOP.example.com.:443", uint16(443))
	f.Fuzz(func(t *testing.T, name, probe string, port uint16) {
		fixed := []string{"example.com", "www.example.com", "*.example.com", "kx.example.com", "ix.example.com", "localhost", "*.apps.example.net"}
		var hs []*Host
		seen := map[string]bool{}
		for _, d := range fixed {
			hs = append(hs, &Host{Domain: d})
			seen[d] = true
		}
		d := config.NormaliseDomain(name)
		valid := config.CheckDomain(d) == nil
		if valid && !seen[d] {
			hs = append(hs, &Host{Domain: d})
		}
		table := Build(hs)

		domainOf := func(h *Host) string {
			if h == nil {
				return "<nil>"
			}
			return h.Domain
		}
		if a, b := table.Lookup(probe), table.Lookup(upperASCII(probe)); a != b {
			t.Errorf("Lookup(%q) = %s but Lookup(%q) = %s", probe, domainOf(a), upperASCII(probe), domainOf(b))
		}
		if !valid {
			return
		}
		p := strconv.Itoa(int(port))
		for _, form := range []string{d, d + ".", d + ":" + p, d + ".:" + p, upperASCII(d) + ".:" + p, upperASCII(d)} {
			if got := table.Lookup(form); got == nil || got.Domain != d {
				t.Errorf("table has %q; Lookup(%q) = %s", d, form, domainOf(got))
			}
		}
	})
}
