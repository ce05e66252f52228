package acme

import (
	"fmt"
	"net"
	"strings"
)

// normaliseDomain returns name in the form certificates are managed under:
// lower case, without a trailing dot. It refuses what HTTP-01 and
// TLS-ALPN-01 cannot validate: IP addresses, wildcards, single labels and
// names that are not LDH (internationalised names must be given in their
// xn-- form).
func normaliseDomain(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	switch {
	case n == "":
		return "", fmt.Errorf("empty name: %w", ErrInvalidDomain)
	case len(n) > 253:
		return "", fmt.Errorf("%q is longer than 253 characters: %w", name, ErrInvalidDomain)
	case net.ParseIP(n) != nil:
		return "", fmt.Errorf("%q is an IP address: %w", name, ErrInvalidDomain)
	case strings.HasPrefix(n, "*."):
		return "", fmt.Errorf("%q is a wildcard, which needs DNS-01: %w", name, ErrInvalidDomain)
	case !strings.Contains(n, "."):
		return "", fmt.Errorf("%q has a single label: %w", name, ErrInvalidDomain)
	}
	for label := range strings.SplitSeq(n, ".") {
		if !validLabel(label) {
			return "", fmt.Errorf("%q has an invalid label %q: %w", name, label, ErrInvalidDomain)
		}
	}
	return n, nil
}

// validLabel reports whether label is 1 to 63 letters, digits and inner
// hyphens.
func validLabel(label string) bool {
	if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		switch b := label[i]; {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-':
		default:
			return false
		}
	}
	return true
}
