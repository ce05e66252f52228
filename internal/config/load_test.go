package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func ptr[T any](v T) *T { return &v }

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, data []byte) *Config {
	t.Helper()
	c, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// TestParseManualExample parses the manual's complete example
// (配置说明 / 完整配置示例) and checks every value and the defaults it relies on.
func TestParseManualExample(t *testing.T) {
	t.Parallel()
	c := mustParse(t, readTestdata(t, "manual_example.toml"))

	want := Default()
	want.Proxy.ListenAddr = "0.0.0.0:443"
	want.Proxy.ListenAddrHTTP = "0.0.0.0:80"
	want.Proxy.ManagementAPIAddr = "127.0.0.1:9090"
	want.LetsEncrypt.Email = "admin@example.com"
	want.LetsEncrypt.Staging = true
	want.LetsEncrypt.CacheDir = "/etc/pingora-ssl/certs"
	want.Logging.Level = "info"
	want.Logging.Format = "text"
	want.Logging.Output = "console"
	want.Logging.FilePath = "/var/log/pingora-proxy/proxy.log"
	want.Metrics = Metrics{Enabled: true, ListenAddr: "0.0.0.0:9091"}
	want.VirtualHosts = []VirtualHost{
		{Domain: "example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(true)},
		{Domain: "api.example.com", EnabledBackendsTag: "b"},
	}
	want.Backends = []Backend{
		{ID: "web-v1", Address: "192.168.1.10:3000", Tags: []string{"a"}},
		{ID: "web-v2", Address: "192.168.1.11:3000", Tags: []string{"b"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(manual example) =\n%+v\nwant\n%+v", c, want)
	}

	// Values the manual documents as defaults.
	hc := c.HealthCheck
	if hc.IntervalSecs != 10 || hc.TimeoutSecs != 5 || hc.UnhealthyThreshold != 3 || hc.HealthyThreshold != 2 {
		t.Errorf("health_check = %+v, want interval 10, timeout 5, thresholds 3/2", hc)
	}
	if got := c.LetsEncrypt; got.RenewalCheckIntervalSecs != 86400 || got.RenewalDaysBeforeExpiry != 30 {
		t.Errorf("lets_encrypt renewal = %d s / %d days, want 86400 / 30", got.RenewalCheckIntervalSecs, got.RenewalDaysBeforeExpiry)
	}
	tests := []struct {
		domain       string
		wantRedirect bool
		wantTLS      bool
	}{
		{domain: "example.com", wantRedirect: true, wantTLS: true},
		{domain: "api.example.com", wantRedirect: true, wantTLS: true}, // both absent: default true
	}
	for _, tt := range tests {
		h := c.Host(tt.domain)
		if h == nil {
			t.Fatalf("Host(%q) = nil", tt.domain)
		}
		if h.Redirect() != tt.wantRedirect || h.TLS() != tt.wantTLS {
			t.Errorf("%s: Redirect() = %v, TLS() = %v, want %v, %v", tt.domain, h.Redirect(), h.TLS(), tt.wantRedirect, tt.wantTLS)
		}
	}
}

// TestParseManualTLSExample parses the TLS guide's complete example.
func TestParseManualTLSExample(t *testing.T) {
	t.Parallel()
	c := mustParse(t, readTestdata(t, "manual_tls.toml"))
	if c.LetsEncrypt.Staging {
		t.Error("lets_encrypt.staging = true, want false")
	}
	if c.Logging.Format != "json" || c.Logging.Output != "file" || c.Logging.FilePath != "/var/log/pingora-proxy/proxy.log" {
		t.Errorf("logging = %+v", c.Logging)
	}
	wantHosts := []VirtualHost{
		{
			Domain: "example.com", EnabledBackendsTag: "main", HTTPToHTTPS: ptr(true), TLSEnabled: ptr(true),
			CertificateSource: &CertificateSource{Type: SourceFile, CertPath: "/etc/ssl/certs/example.com.crt", KeyPath: "/etc/ssl/private/example.com.key"},
		},
		{
			Domain: "api.example.com", EnabledBackendsTag: "api", HTTPToHTTPS: ptr(true), TLSEnabled: ptr(true),
			CertificateSource: &CertificateSource{Type: SourceLetsEncrypt},
		},
		{
			Domain: "blog.example.com", EnabledBackendsTag: "blog", HTTPToHTTPS: ptr(true), TLSEnabled: ptr(true),
			CertificateSource: &CertificateSource{Type: SourceFile, CertPath: "/etc/ssl/certs/blog.com.crt", KeyPath: "/etc/ssl/private/blog.com.key"},
		},
	}
	if !reflect.DeepEqual(c.VirtualHosts, wantHosts) {
		t.Errorf("virtual_hosts =\n%+v\nwant\n%+v", c.VirtualHosts, wantHosts)
	}
	wantBackends := []Backend{
		{ID: "web-1", Address: "10.0.1.10:80", Tags: []string{"main"}},
		{ID: "web-2", Address: "10.0.1.11:80", Tags: []string{"main"}},
		{ID: "api-1", Address: "10.0.2.10:8080", Tags: []string{"api"}},
		{ID: "blog-1", Address: "10.0.3.10:80", Tags: []string{"blog"}},
	}
	if !reflect.DeepEqual(c.Backends, wantBackends) {
		t.Errorf("backends =\n%+v\nwant\n%+v", c.Backends, wantBackends)
	}
}

// minimal is the smallest valid document; invalid documents below add to it.
const minimal = `
[proxy]
listen_addr_http = "0.0.0.0:80"
`

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(minimal+`
[[virtual_hosts]]
domain = "Example.COM."
enabled_backends_tag = "a"
http_to_https = false
`))
	if got, want := c.Proxy.ManagementAPIAddr, "127.0.0.1:9090"; got != want {
		t.Errorf("management_api_addr = %q, want default %q", got, want)
	}
	want := Default()
	want.Proxy.ListenAddrHTTP = "0.0.0.0:80"
	want.VirtualHosts = []VirtualHost{{Domain: "example.com", EnabledBackendsTag: "a", HTTPToHTTPS: ptr(false)}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", c, want)
	}
	h := c.Host("example.com")
	if h == nil {
		t.Fatal(`Host("example.com") = nil: domain not normalised`)
	}
	if h.Redirect() {
		t.Error("Redirect() = true with http_to_https = false")
	}
	if !h.TLS() {
		t.Error("TLS() = false with tls_enabled absent, want default true")
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		// wantErrs must each appear in the error message.
		wantErrs []string
	}{
		{
			name:     "no listener",
			doc:      "[proxy]\nmanagement_api_addr = \"127.0.0.1:9090\"\n",
			wantErrs: []string{"proxy: set listen_addr"},
		},
		{
			name:     "unknown key with line",
			doc:      minimal + "bogus = 1\n",
			wantErrs: []string{"line 4: proxy.bogus: unknown key"},
		},
		{
			name:     "unknown table",
			doc:      minimal + "[nonsense]\nx = 1\n",
			wantErrs: []string{"nonsense", "unknown key"},
		},
		{
			name: "duplicate domain",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[[virtual_hosts]]
domain = "EXAMPLE.com."
enabled_backends_tag = "b"
`,
			wantErrs: []string{`virtual_hosts[1].domain: "example.com" is already defined by virtual_hosts[0]`},
		},
		{
			name: "bad domain",
			doc: minimal + `
[[virtual_hosts]]
domain = "ex ample.com"
enabled_backends_tag = "a"
`,
			wantErrs: []string{"virtual_hosts[0].domain:"},
		},
		{
			name: "missing tag",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
`,
			wantErrs: []string{"virtual_hosts[0].enabled_backends_tag: must not be empty"},
		},
		{
			name: "bad lb policy",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
lb_policy = "random"
`,
			wantErrs: []string{"virtual_hosts[0].lb_policy:"},
		},
		{
			name: "file certificate without cert_path",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "file"
key_path = "/k.pem"
`,
			wantErrs: []string{`virtual_hosts[0].certificate_source.cert_path: required when type is "file"`},
		},
		{
			name: "file certificate without key_path",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "file"
cert_path = "/c.pem"
`,
			wantErrs: []string{`virtual_hosts[0].certificate_source.key_path: required when type is "file"`},
		},
		{
			name: "unknown certificate type",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "acme"
`,
			wantErrs: []string{"virtual_hosts[0].certificate_source.type:"},
		},
		{
			name: "lets_encrypt with paths",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "lets_encrypt"
cert_path = "/c.pem"
`,
			wantErrs: []string{"virtual_hosts[0].certificate_source: cert_path and key_path apply only"},
		},
		{
			name: "lets_encrypt wildcard",
			doc: minimal + `
[[virtual_hosts]]
domain = "*.example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "lets_encrypt"
`,
			wantErrs: []string{"virtual_hosts[0].certificate_source.type: lets_encrypt cannot issue wildcard"},
		},
		{
			name: "lets_encrypt without cache_dir",
			doc: minimal + `
[lets_encrypt]
cache_dir = ""
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "lets_encrypt"
`,
			wantErrs: []string{"lets_encrypt.cache_dir: required by virtual_hosts[0]"},
		},
		{
			name:     "directory_url not https",
			doc:      minimal + "[lets_encrypt]\ndirectory_url = \"http://acme.test/dir\"\n",
			wantErrs: []string{"lets_encrypt.directory_url:"},
		},
		{
			name: "bad backend address",
			doc: minimal + `
[[backends]]
id = "web"
address = "10.0.0.1"
`,
			wantErrs: []string{`backends[0].address: "10.0.0.1" is not host:port`},
		},
		{
			name: "backend port out of range",
			doc: minimal + `
[[backends]]
id = "web"
address = "10.0.0.1:65536"
`,
			wantErrs: []string{"backends[0].address:", "65536"},
		},
		{
			name: "backend without address",
			doc: minimal + `
[[backends]]
id = "web"
`,
			wantErrs: []string{"backends[0].address: must not be empty"},
		},
		{
			name: "duplicate backend id",
			doc: minimal + `
[[backends]]
id = "web"
address = "10.0.0.1:80"
[[backends]]
id = "web"
address = "10.0.0.2:80"
`,
			wantErrs: []string{`backends[1].id: "web" is already used by backends[0]`},
		},
		{
			name: "bad backend id",
			doc: minimal + `
[[backends]]
id = "web/1"
address = "10.0.0.1:80"
`,
			wantErrs: []string{"backends[0].id:"},
		},
		{
			name: "duplicate and bad tags",
			doc: minimal + `
[[backends]]
id = "web"
address = "10.0.0.1:80"
tags = ["a", "a", "b c"]
`,
			wantErrs: []string{`backends[0].tags[1]: "a" is listed twice`, "backends[0].tags[2]:"},
		},
		{
			name: "weight out of range",
			doc: minimal + `
[[backends]]
id = "web"
address = "10.0.0.1:80"
weight = 1001
`,
			wantErrs: []string{"backends[0].weight:"},
		},
		{
			name: "control characters in certificate paths",
			doc: minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "file"
cert_path = "/etc/ssl/c.pem\u0000"
key_path = "/etc/ssl/k.pem\n"
`,
			wantErrs: []string{"virtual_hosts[0].certificate_source.cert_path: ", "virtual_hosts[0].certificate_source.key_path: ", "control character"},
		},
		{
			name:     "Kelvin sign does not fold into a valid domain",
			doc:      minimal + "[[virtual_hosts]]\ndomain = \"\u212Aa.example.com\"\nenabled_backends_tag = \"a\"\n",
			wantErrs: []string{"virtual_hosts[0].domain:"},
		},
		{
			name:     "too many tags",
			doc:      minimal + "[[backends]]\nid = \"a\"\naddress = \"h:1\"\ntags = [" + strings.Repeat(`"t", `, 101) + "]\n",
			wantErrs: []string{"backends[0].tags: 101 tags; a backend may carry at most 100"},
		},
		{
			name:     "bad log format",
			doc:      minimal + "[logging]\nformat = \"xml\"\n",
			wantErrs: []string{`logging.format: "xml" is not one of "text", "json"`},
		},
		{
			name:     "bad log level",
			doc:      minimal + "[logging]\nlevel = \"loud\"\n",
			wantErrs: []string{"logging.level:"},
		},
		{
			name:     "file output without path",
			doc:      minimal + "[logging]\noutput = \"file\"\n",
			wantErrs: []string{"logging.file_path: required"},
		},
		{
			name:     "bad listen address",
			doc:      "[proxy]\nlisten_addr = \"example.com:443\"\n",
			wantErrs: []string{"proxy.listen_addr:"},
		},
		{
			name:     "empty management address",
			doc:      minimal + "management_api_addr = \"\"\n",
			wantErrs: []string{"proxy.management_api_addr: must not be empty"},
		},
		{
			name:     "metrics enabled with bad address",
			doc:      minimal + "[metrics]\nenabled = true\nlisten_addr = \"9091\"\n",
			wantErrs: []string{"metrics.listen_addr:"},
		},
		{
			name:     "health check zero values",
			doc:      minimal + "[health_check]\ninterval_secs = 0\ntimeout_secs = 0\nunhealthy_threshold = 0\nhealthy_threshold = 0\npath = \"health\"\n",
			wantErrs: []string{"health_check.interval_secs:", "health_check.timeout_secs:", "health_check.unhealthy_threshold:", "health_check.healthy_threshold:", "health_check.path:"},
		},
		{
			name:     "wrong type names key and line",
			doc:      minimal + "[health_check]\ninterval_secs = \"ten\"\n",
			wantErrs: []string{"line 5", "health_check.interval_secs"},
		},
		{
			name:     "syntax error has line",
			doc:      "[proxy\n",
			wantErrs: []string{"line 1"},
		},
		{
			name: "every problem reported together",
			doc: `
[proxy]
listen_addr_http = "0.0.0.0:80"
bogus = true

[logging]
format = "xml"

[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "file"

[[backends]]
id = "web"
address = "nope"
`,
			wantErrs: []string{
				"line 4: proxy.bogus: unknown key",
				"logging.format:",
				"virtual_hosts[1].domain:",
				"virtual_hosts[1].certificate_source.cert_path:",
				"virtual_hosts[1].certificate_source.key_path:",
				"backends[0].address:",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors %q", c, tt.wantErrs)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with error %v", err)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

// TestValidateFieldErrors checks that validation problems are FieldErrors
// carrying their full key, so callers can match them with errors.As.
func TestValidateFieldErrors(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Proxy.ListenAddrHTTP = ":80"
	c.VirtualHosts = []VirtualHost{{Domain: "example.com", EnabledBackendsTag: "a", CertificateSource: &CertificateSource{Type: SourceFile}}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() error %T is not a joined error", err)
	}
	var keys []string
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v (%T) is not a *FieldError", e, e)
		}
		keys = append(keys, fe.Key)
	}
	want := []string{"virtual_hosts[0].certificate_source.cert_path", "virtual_hosts[0].certificate_source.key_path"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		data    string
		wantErr string
	}{
		{name: "valid", path: filepath.Join(dir, "ok.toml"), data: minimal},
		{name: "invalid names file", path: filepath.Join(dir, "bad.toml"), data: minimal + "x = 1\n", wantErr: "bad.toml: line 4: proxy.x: unknown key"},
		{name: "missing file", path: filepath.Join(dir, "missing.toml"), wantErr: "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.data != "" {
				if err := os.WriteFile(tt.path, []byte(tt.data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(tt.path)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("Load = %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestMarshalRoundTrip checks Parse(Marshal(c)) == c for the manual's
// examples and a document using every addition, and that Marshal is a
// fixed point.
func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	full := minimal + `
listen_addr = "[::]:8443"
https_port = 443
max_body_bytes = 1048576
upstream_timeout_secs = 60
[lets_encrypt]
email = "ops@example.com"
directory_url = "https://acme.test/dir"
ca_root = "/etc/ca.pem"
[logging]
level = "debug"
format = "json"
output = "file"
file_path = "/var/log/f.log"
access_log = true
compress = true
[health_check]
path = "/healthz"
passive_5xx = true
passive_failures = 0
[[virtual_hosts]]
domain = "*.example.com"
enabled_backends_tag = "v1.2:canary"
http_to_https = false
tls_enabled = false
lb_policy = "weighted"
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "lets_encrypt"
[[backends]]
id = "a"
address = "backend.internal:8080"
tags = ["a", "v1.2:canary"]
weight = 5
[[backends]]
id = "b"
address = "[::1]:9000"
tags = []
`
	tests := []struct {
		name string
		doc  []byte
	}{
		{name: "manual example", doc: readTestdata(t, "manual_example.toml")},
		{name: "manual TLS example", doc: readTestdata(t, "manual_tls.toml")},
		{name: "every field", doc: []byte(full)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.doc)
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(out), header) {
				t.Errorf("Marshal output does not start with the header:\n%s", out)
			}
			back := mustParse(t, out)
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip changed the config:\n got %+v\nwant %+v\ndocument:\n%s", back, c, out)
			}
			again, err := Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(out) {
				t.Errorf("Marshal is not a fixed point:\n%s\n---\n%s", out, again)
			}
			// The output must be strict TOML for our schema: no key the
			// decoder would reject.
			dec := toml.NewDecoder(strings.NewReader(string(out)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(Default()); err != nil {
				t.Errorf("strict decode of Marshal output: %v", err)
			}
		})
	}
}
