package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The manual's usage examples 1 and 2 (使用示例): virtual hosts and backends
// only, no [proxy] section.
const (
	manualUsageExample1 = `[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "prod"

[[backends]]
id = "web-server"
address = "127.0.0.1:8080"
tags = ["prod"]
`
	manualUsageExample2 = `[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "example-backends"

[[virtual_hosts]]
domain = "api.example.com"
enabled_backends_tag = "api-backends"

[[virtual_hosts]]
domain = "blog.example.com"
enabled_backends_tag = "blog-backends"

[[backends]]
id = "example-web"
address = "10.0.1.10:80"
tags = ["example-backends"]

[[backends]]
id = "api-server"
address = "10.0.2.10:8080"
tags = ["api-backends"]
`
)

// TestLoadWithoutProxySection: a file with no [proxy] section, such as the
// manual's usage examples, loads with the manual's listeners, and writing
// it back spells them out so that the saved file means the same.
func TestLoadWithoutProxySection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
		hosts     int
	}{
		{"example 1", manualUsageExample1, 1},
		{"example 2", manualUsageExample2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			p := c.Proxy
			if p.ListenAddr != "0.0.0.0:443" || p.ListenAddrHTTP != "0.0.0.0:80" || p.ManagementAPIAddr != "127.0.0.1:9090" {
				t.Errorf("listeners = https %q, http %q, api %q; want the manual's 0.0.0.0:443, 0.0.0.0:80, 127.0.0.1:9090",
					p.ListenAddr, p.ListenAddrHTTP, p.ManagementAPIAddr)
			}
			if len(c.VirtualHosts) != tc.hosts {
				t.Errorf("%d virtual hosts, want %d", len(c.VirtualHosts), tc.hosts)
			}
			if err := Save(path, c); err != nil {
				t.Fatalf("Save: %v", err)
			}
			saved, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(saved), "[proxy]") {
				t.Errorf("the saved file has no [proxy] section:\n%s", saved)
			}
			back, err := Load(path)
			if err != nil {
				t.Fatalf("Load after Save: %v", err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("Load(Save(c)) =\n%+v\nwant\n%+v", back, c)
			}
		})
	}
}

// TestProxySectionKeepsItsMeaning: a [proxy] section, however written and
// whatever it sets, gets no listener it did not ask for; with none at all
// it is still refused.
func TestProxySectionKeepsItsMeaning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		doc         string
		https, http string // wanted listeners; both "" means an error
	}{
		{"https only", "[proxy]\nlisten_addr = \"127.0.0.1:8443\"\n", "127.0.0.1:8443", ""},
		{"http only", "[proxy]\nlisten_addr_http = \"127.0.0.1:8080\"\n", "", "127.0.0.1:8080"},
		{"dotted key", "proxy.listen_addr_http = \"127.0.0.1:8080\"\n", "", "127.0.0.1:8080"},
		{"inline table", "proxy = { listen_addr = \"127.0.0.1:8443\" }\n", "127.0.0.1:8443", ""},
		{"no listener", "[proxy]\nmanagement_api_addr = \"127.0.0.1:9090\"\n", "", ""},
		{"empty section", "[proxy]\n", "", ""},
		{"empty inline table", "proxy = {}\n", "", ""},
		{"listeners switched off", "[proxy]\nlisten_addr = \"\"\nlisten_addr_http = \"\"\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tc.doc))
			if tc.https == "" && tc.http == "" {
				if err == nil || !strings.Contains(err.Error(), "proxy: set listen_addr") {
					t.Fatalf("Parse = %+v, %v; want the error asking for a listener", c, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Proxy.ListenAddr != tc.https || c.Proxy.ListenAddrHTTP != tc.http {
				t.Errorf("listeners = https %q, http %q; want %q, %q", c.Proxy.ListenAddr, c.Proxy.ListenAddrHTTP, tc.https, tc.http)
			}
		})
	}
}

// TestNoProxySectionWithOtherProblems: the manual's listeners are filled in
// before validation also when the document has unknown keys, so that only
// the real problems are reported.
func TestNoProxySectionWithOtherProblems(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(manualUsageExample1 + "colour = \"blue\"\n"))
	if err == nil || !strings.Contains(err.Error(), "backends.colour: unknown key") {
		t.Fatalf("Parse: %v, want the unknown key reported", err)
	}
	if strings.Contains(err.Error(), "listen_addr") {
		t.Errorf("Parse reports a missing listener for a file with no [proxy] section: %v", err)
	}
}
