package httpx

import (
	"fmt"
	"testing"
)

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"chunked", "CHUNKED", true},
		{"Keep-Alive", "keep-alive", true},
		{"chunked", "chunke", false},
		{"\u212aeep-alive", "keep-alive", false}, // Kelvin sign: no Unicode folding
		{"", "", true},
	} {
		if got := EqualFold(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestTokens(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a, b,c", "[a b c]"},
		{" ,, a ,\t", "[a]"},
		{"", "[]"},
		{"close", "[close]"},
	} {
		if got := fmt.Sprint(SplitTokens(tc.in)); got != tc.want {
			t.Errorf("SplitTokens(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if !HasToken([]string{"foo", "Keep-Alive, Upgrade"}, "upgrade") || HasToken([]string{"upgrades"}, "upgrade") {
		t.Error("HasToken")
	}
	if n := testing.AllocsPerRun(100, func() { HasToken([]string{"a, b, close"}, "close") }); n != 0 {
		t.Errorf("HasToken allocates %v times", n)
	}
}

func TestSyntax(t *testing.T) {
	for s, want := range map[string]bool{"Content-Type": true, "X_y.z~": true, "": false, "a b": false, "a:": false, "é": false} {
		if IsToken(s) != want {
			t.Errorf("IsToken(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"text/plain; q=1": true, "a\tb": true, "a\rb": false, "a\nb": false, "a\x00": false, "a\x7f": false} {
		if ValidValue(s) != want {
			t.Errorf("ValidValue(%q) = %v", s, !want)
		}
	}
}
