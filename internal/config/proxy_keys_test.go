package config

import (
	"strings"
	"testing"
)

// TestProxyHardeningKeys covers the keys added for hostile clients and
// diagnostics: defaults, accepted values, and errors naming the key.
func TestProxyHardeningKeys(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("[proxy]\nlisten_addr_http = \"127.0.0.1:0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Proxy; p.ClientBodyTimeoutSecs != 60 || p.SendTimeoutSecs != 60 || p.MaxConnections != 0 || len(p.TrustedProxies) != 0 {
		t.Errorf("defaults: %+v", p)
	}
	ok := "[proxy]\nlisten_addr_http = \"127.0.0.1:0\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\", \"2001:db8::/32\"]\n" +
		"max_connections = 1000\nclient_body_timeout_secs = 5\nsend_timeout_secs = 5\n[debug]\npprof_addr = \"127.0.0.1:6060\"\n"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("valid values refused: %v", err)
	}
	for _, tc := range []struct{ doc, key string }{
		{"trusted_proxies = [\"10.0.0.0/33\"]", "proxy.trusted_proxies[0]"},
		{"trusted_proxies = [\"1.2.3.4\", \"example.com\"]", "proxy.trusted_proxies[1]"},
		{"max_connections = -1", "proxy.max_connections"},
		{"client_body_timeout_secs = 0", "proxy.client_body_timeout_secs"},
		{"send_timeout_secs = 0", "proxy.send_timeout_secs"},
		{"[debug]\npprof_addr = \"nohost\"", "debug.pprof_addr"},
	} {
		_, err := Parse([]byte("[proxy]\nlisten_addr_http = \"127.0.0.1:0\"\n" + tc.doc + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%q: error %v, want one naming %s", tc.doc, err, tc.key)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.1.2.3/8":       "10.0.0.0/8", // masked
		"192.0.2.7":        "192.0.2.7/32",
		"::ffff:192.0.2.7": "192.0.2.7/32", // v4-mapped is the v4 address
		"2001:db8::1/32":   "2001:db8::/32",
		"2001:db8::1":      "2001:db8::1/128",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}
