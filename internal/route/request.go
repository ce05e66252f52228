package route

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"fronttier/internal/balance"
)

// Cookie returns the value of the first cookie called name in h's Cookie
// fields (surrounding double quotes removed), without parsing the others
// or allocating, unlike http.Request.Cookie.
func Cookie(h http.Header, name string) (value string, ok bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			pair = strings.TrimSpace(pair)
			k, v, found := strings.Cut(pair, "=")
			if !found || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// queryHas reports whether the raw query string raw has a parameter name
// whose value is value, as url.ParseQuery would decode them. It allocates
// only to decode a parameter with escapes ('%' or '+').
func queryHas(raw, name, value string) bool {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if unescaped(k) != name {
			continue
		}
		if unescaped(v) == value {
			return true
		}
	}
	return false
}

// unescaped decodes a query component; one that does not decode is
// compared as it is.
func unescaped(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// ipBucket returns the bucket of the client at remoteAddr (the request's
// RemoteAddr, ip:port): a hash of its address in 16-byte form, so an IPv4
// client is the same whether it came over IPv4 or as an IPv4-mapped IPv6
// address. An address that does not parse is hashed as it is.
func ipBucket(remoteAddr string) int {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a := ap.Addr().Unmap().As16()
		return int(balance.Hash(a[:]) % Buckets)
	}
	return int(balance.Hash(remoteAddr) % Buckets)
}
