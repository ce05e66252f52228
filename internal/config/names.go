package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// NormaliseDomain returns d with ASCII letters lower-cased, without
// surrounding space or a trailing dot. It does not validate. Only ASCII is
// folded: Unicode folding would turn the Kelvin sign into "k" and "İ" into
// "i", so a name CheckDomain must refuse would pass as another.
func NormaliseDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	for i := 0; i < len(d); i++ {
		if c := d[i]; c >= 'A' && c <= 'Z' {
			b := []byte(d)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return d
}

// CheckDomain reports why d (normalised) is not a host name fronttier can
// serve: letters, digits and hyphens in dot-separated labels of at most 63
// characters, at most 253 in all, optionally starting with the wildcard
// label "*." that matches exactly one further label. IP addresses are not
// domains.
func CheckDomain(d string) error {
	if d == "" {
		return errors.New("must not be empty")
	}
	if len(d) > 253 {
		return errors.New("longer than 253 characters")
	}
	name := d
	if rest, ok := strings.CutPrefix(d, "*."); ok {
		name = rest
		if !strings.Contains(name, ".") {
			return fmt.Errorf("%q: a wildcard needs at least two labels after \"*.\"", d)
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%q is an IP address, not a domain name", d)
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return fmt.Errorf("%q: %w", d, err)
		}
	}
	return nil
}

func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return errors.New("label longer than 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has %q; use letters, digits, hyphens (punycode for IDNs)", l, c)
		}
	}
	return nil
}

// CheckHostPort reports why addr is not a host:port a backend can be dialled
// at: a port from 1 to 65535 and an IP address or a host name.
func CheckHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if err := checkPort(port, false); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q: missing host", addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if err := CheckDomain(strings.ToLower(host)); err != nil || strings.HasPrefix(host, "*.") {
		return fmt.Errorf("%q: host is neither an IP address nor a valid host name", addr)
	}
	return nil
}

// CheckListenAddr reports why addr cannot be listened on: it must be
// host:port with an IP address or an empty host (all interfaces) or
// localhost, and a port from 0 (any free port) to 65535.
func CheckListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if err := checkPort(port, true); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "" || host == "localhost" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: host must be an IP address, localhost or empty", addr)
	}
	return nil
}

// IsLoopback reports whether the listen address addr (host:port) binds
// only the loopback interface: a host of localhost, 127.0.0.0/8 or ::1. An
// empty host, 0.0.0.0 and :: bind every interface and are not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckToken reports why token cannot be a management API bearer token: it
// must be 1 to 1024 printable ASCII characters without spaces, as an
// Authorization header carries it. The error never quotes the token.
func CheckToken(token string) error {
	if token == "" {
		return errors.New("must not be empty")
	}
	if len(token) > 1024 {
		return errors.New("longer than 1024 characters")
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("character %d is not printable ASCII (spaces and control characters cannot be sent in an Authorization header)", i+1)
		}
	}
	return nil
}

func checkPort(p string, zeroOK bool) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// CheckID reports why id is not a valid backend id: 1 to 64 characters of
// letters, digits, '.', '_' and '-' (ids appear in URLs and metric labels).
func CheckID(id string) error { return checkToken(id, "id") }

// CheckTag reports why tag is not a valid tag: the same alphabet as ids,
// plus ':'.
func CheckTag(tag string) error { return checkToken(tag, "tag") }

func checkToken(s, what string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || (c == ':' && what == "tag")
		if !ok {
			return fmt.Errorf("%q has %q; a %s may use letters, digits, '.', '_', '-'", s, c, what)
		}
	}
	return nil
}

// ParsePrefix parses a trusted proxy: an IP address (a range of one) or a
// CIDR range.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR range", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
