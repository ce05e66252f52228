// Package httpx holds the small HTTP/1.1 syntax helpers both sides of the
// data path share: the server that parses client requests and the upstream
// client that parses backend responses. Comparisons are ASCII-only on
// purpose: Unicode case folding would let look-alike letters (the Kelvin
// sign for "k") match protocol keywords.
package httpx

// EqualFold reports whether a and b are equal under ASCII case folding.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Text is what the syntax checks take: a string, or the bytes of a line
// still in a read buffer.
type Text interface{ ~string | ~[]byte }

// TrimOWS trims optional whitespace (spaces and tabs) from both ends of s.
func TrimOWS[T Text](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// NextToken returns the first element of the comma-separated list v,
// trimmed, and the rest of the list; empty elements are skipped. It
// allocates nothing: loop `for tok, rest := NextToken(v); tok != ""; tok,
// rest = NextToken(rest)`.
func NextToken(v string) (tok, rest string) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok, v = TrimOWS(v[:i]), v[min(i+1, len(v)):]
		if tok != "" {
			return tok, v
		}
	}
	return "", ""
}

// SplitTokens returns the elements of the comma-separated list v.
func SplitTokens(v string) []string {
	var out []string
	for tok, rest := NextToken(v); tok != ""; tok, rest = NextToken(rest) {
		out = append(out, tok)
	}
	return out
}

// HasToken reports whether any of the comma-separated lists in vv holds
// token (ASCII case-insensitively).
func HasToken(vv []string, token string) bool {
	for _, v := range vv {
		for tok, rest := NextToken(v); tok != ""; tok, rest = NextToken(rest) {
			if EqualFold(tok, token) {
				return true
			}
		}
	}
	return false
}

// IsToken reports whether s is a non-empty RFC 9110 token (a method or a
// field name).
func IsToken[T Text](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// ValidValue reports whether s may be a field value: no control characters
// but horizontal tab (so no CR, LF or NUL).
func ValidValue[T Text](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ParseLength parses a Content-Length value: decimal digits only (no sign,
// no spaces, no list), at most 18 of them so it cannot overflow.
func ParseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// tokenChar marks RFC 9110's tchar: "!#$%&'*+-.^_`|~", digits and letters.
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
