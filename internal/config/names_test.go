package config

import (
	"strings"
	"testing"
)

func TestNormaliseDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "  Example.com.  ", want: "example.com"},
		{in: "*.Example.com", want: "*.example.com"},
		{in: "", want: ""},
		{in: ".", want: ""},
		// Only ASCII folds: these must stay invalid, not become "k..." or "i...".
		{in: "\u212Ax.Example.com", want: "\u212Ax.example.com"},
		{in: "\u0130x.example.com", want: "\u0130x.example.com"},
		{in: "ÉXAMPLE.com", want: "Éxample.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := NormaliseDomain(tt.in); got != tt.want {
				t.Errorf("NormaliseDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCheckDomain(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	label64 := strings.Repeat("a", 64)
	// 4 labels of 63 plus 3 dots = 255 characters; 3 of 63 + 61 = 253.
	long253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	long255 := label63 + "." + label63 + "." + label63 + "." + label63
	tests := []struct {
		name   string
		domain string
		wantOK bool
	}{
		{name: "plain", domain: "example.com", wantOK: true},
		{name: "subdomain", domain: "a.b.example.com", wantOK: true},
		{name: "single label", domain: "localhost", wantOK: true},
		{name: "digits and hyphen", domain: "web-01.example.com", wantOK: true},
		{name: "punycode", domain: "xn--bcher-kva.example", wantOK: true},
		{name: "wildcard", domain: "*.example.com", wantOK: true},
		{name: "wildcard deep", domain: "*.a.example.com", wantOK: true},
		{name: "wildcard of TLD", domain: "*.com", wantOK: false},
		{name: "bare star", domain: "*", wantOK: false},
		{name: "double wildcard", domain: "*.*.example.com", wantOK: false},
		{name: "inner wildcard", domain: "a.*.example.com", wantOK: false},
		{name: "partial wildcard", domain: "a*.example.com", wantOK: false},
		{name: "empty", domain: "", wantOK: false},
		{name: "IPv4", domain: "192.168.1.1", wantOK: false},
		{name: "IPv6", domain: "::1", wantOK: false},
		{name: "bracketed IPv6", domain: "[::1]", wantOK: false},
		{name: "label 63", domain: label63 + ".com", wantOK: true},
		{name: "label 64", domain: label64 + ".com", wantOK: false},
		{name: "253 characters", domain: long253, wantOK: true},
		{name: "255 characters", domain: long255, wantOK: false},
		{name: "leading hyphen", domain: "-a.example.com", wantOK: false},
		{name: "trailing hyphen", domain: "a-.example.com", wantOK: false},
		{name: "empty label", domain: "a..example.com", wantOK: false},
		{name: "leading dot", domain: ".example.com", wantOK: false},
		{name: "trailing dot (not normalised)", domain: "example.com.", wantOK: false},
		{name: "upper case (not normalised)", domain: "Example.com", wantOK: false},
		{name: "underscore", domain: "my_host.example.com", wantOK: false},
		{name: "space", domain: "ex ample.com", wantOK: false},
		{name: "port", domain: "example.com:80", wantOK: false},
		{name: "unicode", domain: "bücher.example", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckDomain(tt.domain)
			if (err == nil) != tt.wantOK {
				t.Errorf("CheckDomain(%q) = %v, want ok=%v", tt.domain, err, tt.wantOK)
			}
		})
	}
}

func TestCheckHostPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		wantOK bool
	}{
		{addr: "192.168.1.10:3000", wantOK: true},
		{addr: "[::1]:80", wantOK: true},
		{addr: "[2001:db8::1]:8443", wantOK: true},
		{addr: "localhost:9527", wantOK: true},
		{addr: "backend.internal:8080", wantOK: true},
		{addr: "Backend.Internal:8080", wantOK: true},
		{addr: "web:1", wantOK: true},
		{addr: "web:65535", wantOK: true},
		{addr: "web:0", wantOK: false},
		{addr: "web:65536", wantOK: false},
		{addr: "web:-1", wantOK: false},
		{addr: "web:http", wantOK: false},
		{addr: "web:", wantOK: false},
		{addr: "web", wantOK: false},
		{addr: ":80", wantOK: false},
		{addr: "::1:80", wantOK: false},
		{addr: "[::1]", wantOK: false},
		{addr: "*.example.com:80", wantOK: false},
		{addr: "under_score:80", wantOK: false},
		{addr: "http://web:80", wantOK: false},
		{addr: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := CheckHostPort(tt.addr)
			if (err == nil) != tt.wantOK {
				t.Errorf("CheckHostPort(%q) = %v, want ok=%v", tt.addr, err, tt.wantOK)
			}
		})
	}
}

func TestCheckListenAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		wantOK bool
	}{
		{addr: "0.0.0.0:443", wantOK: true},
		{addr: "127.0.0.1:9090", wantOK: true},
		{addr: ":80", wantOK: true},
		{addr: ":0", wantOK: true},
		{addr: "localhost:9090", wantOK: true},
		{addr: "[::1]:80", wantOK: true},
		{addr: "[::]:443", wantOK: true},
		{addr: "127.0.0.1:65535", wantOK: true},
		{addr: "127.0.0.1:65536", wantOK: false},
		{addr: "127.0.0.1:-1", wantOK: false},
		{addr: "127.0.0.1", wantOK: false},
		{addr: "9090", wantOK: false},
		{addr: "example.com:80", wantOK: false},
		{addr: "::1:80", wantOK: false},
		{addr: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := CheckListenAddr(tt.addr)
			if (err == nil) != tt.wantOK {
				t.Errorf("CheckListenAddr(%q) = %v, want ok=%v", tt.addr, err, tt.wantOK)
			}
		})
	}
}

func TestCheckIDAndTag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		s         string
		wantIDOK  bool
		wantTagOK bool
	}{
		{name: "simple", s: "web-v1", wantIDOK: true, wantTagOK: true},
		{name: "all classes", s: "A.b_c-D9", wantIDOK: true, wantTagOK: true},
		{name: "single char", s: "a", wantIDOK: true, wantTagOK: true},
		{name: "64 chars", s: strings.Repeat("x", 64), wantIDOK: true, wantTagOK: true},
		{name: "65 chars", s: strings.Repeat("x", 65), wantIDOK: false, wantTagOK: false},
		{name: "colon", s: "v1:canary", wantIDOK: false, wantTagOK: true},
		{name: "empty", s: "", wantIDOK: false, wantTagOK: false},
		{name: "space", s: "a b", wantIDOK: false, wantTagOK: false},
		{name: "slash", s: "a/b", wantIDOK: false, wantTagOK: false},
		{name: "question mark", s: "a?b", wantIDOK: false, wantTagOK: false},
		{name: "percent", s: "a%20", wantIDOK: false, wantTagOK: false},
		{name: "quote", s: `a"b`, wantIDOK: false, wantTagOK: false},
		{name: "non-ASCII", s: "版本a", wantIDOK: false, wantTagOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := CheckID(tt.s); (err == nil) != tt.wantIDOK {
				t.Errorf("CheckID(%q) = %v, want ok=%v", tt.s, err, tt.wantIDOK)
			}
			if err := CheckTag(tt.s); (err == nil) != tt.wantTagOK {
				t.Errorf("CheckTag(%q) = %v, want ok=%v", tt.s, err, tt.wantTagOK)
			}
		})
	}
}
