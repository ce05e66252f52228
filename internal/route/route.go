// Package route is the immutable routing snapshot the data path reads: which
// virtual host a request's Host names, and the pool of backends that host
// currently routes to. A change builds a whole new Table and publishes it
// with one atomic pointer swap; a Table is never modified after Build, so
// readers need no lock.
package route

import (
	"strings"

	"fronttier/internal/balance"
)

// Host is one virtual host as the data path sees it.
type Host struct {
	// Domain is the configured name, lower case; "*.example.com" for a
	// wildcard host.
	Domain string
	// Tag is the enabled_backends_tag the host routes to.
	Tag string
	// Redirect says plain HTTP should be redirected to HTTPS (when HTTPS can
	// be served for the host).
	Redirect bool
	// TLS says the host is served on the HTTPS listener.
	TLS bool
	// Pool holds the backends that carry Tag; never nil, possibly empty.
	Pool *balance.Pool
	// Split, when set, places requests on other pools too (a canary,
	// overrides) and may pin clients to backends: see Decide. nil means
	// every request goes to Pool, with no cookie read or set.
	Split *Split
}

// Table maps host names to hosts. The zero Table routes nothing.
type Table struct {
	exact    map[string]*Host
	wildcard map[string]*Host // keyed by the suffix after "*", e.g. ".example.com"
	hosts    []*Host
}

// Build returns a table of hosts. Domains must be normalised and unique.
func Build(hosts []*Host) *Table {
	t := &Table{exact: make(map[string]*Host, len(hosts)), hosts: hosts}
	for _, h := range hosts {
		if suffix, ok := strings.CutPrefix(h.Domain, "*"); ok {
			if t.wildcard == nil {
				t.wildcard = make(map[string]*Host)
			}
			t.wildcard[suffix] = h
			continue
		}
		t.exact[h.Domain] = h
	}
	return t
}

// Hosts returns every host of the table, in the order given to Build.
func (t *Table) Hosts() []*Host { return t.hosts }

// Lookup returns the host serving name, a Host header or SNI value: matched
// case-insensitively, ignoring a port and a trailing dot; exact names first,
// then a wildcard covering exactly one more label. It returns nil when no
// host matches. It allocates only when name has upper-case letters.
func (t *Table) Lookup(name string) *Host {
	name = Normalise(name)
	if h := t.exact[name]; h != nil {
		return h
	}
	if t.wildcard != nil {
		if i := strings.IndexByte(name, '.'); i > 0 {
			return t.wildcard[name[i:]]
		}
	}
	return nil
}

// Normalise strips a port and a trailing dot from a Host header value and
// lower-cases its ASCII letters. IPv6 literals keep their brackets. Only
// ASCII is folded, as configured domains are (Unicode folding would map the
// Kelvin sign to "k", but only when an ASCII capital made it fold at all).
func Normalise(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			b := []byte(host)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return host
}
