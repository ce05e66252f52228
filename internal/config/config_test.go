package config

import (
	"reflect"
	"testing"
)

func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	orig := mustParse(t, readTestdata(t, "manual_tls.toml"))
	pristine := mustParse(t, readTestdata(t, "manual_tls.toml"))

	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone() differs from the original:\n%+v\n%+v", c, orig)
	}
	c.Proxy.ListenAddr = ":1"
	c.Backends[0].Tags[0] = "mutated"
	c.Backends[0].Tags = append(c.Backends[0].Tags, "more")
	c.Backends[1].ID = "mutated"
	*c.VirtualHosts[0].HTTPToHTTPS = false
	*c.VirtualHosts[0].TLSEnabled = false
	c.VirtualHosts[0].CertificateSource.CertPath = "/mutated"
	c.VirtualHosts[1].CertificateSource.Type = SourceFile
	c.VirtualHosts[2].Domain = "mutated.example.com"
	c.VirtualHosts = append(c.VirtualHosts, VirtualHost{Domain: "new.example.com"})
	c.Backends = append(c.Backends[:1], c.Backends[2:]...)
	c.Sort()

	if !reflect.DeepEqual(orig, pristine) {
		t.Errorf("mutating the clone changed the original:\n got %+v\nwant %+v", orig, pristine)
	}
}

func TestCloneEmpty(t *testing.T) {
	t.Parallel()
	c := Default().Clone()
	c.VirtualHosts = append(c.VirtualHosts, VirtualHost{Domain: "a.example"})
	if d := Default(); len(d.VirtualHosts) != 0 {
		t.Errorf("Default() has hosts %v", d.VirtualHosts)
	}
}

func TestVirtualHostClone(t *testing.T) {
	t.Parallel()
	v := VirtualHost{Domain: "example.com", HTTPToHTTPS: ptr(true), TLSEnabled: ptr(true), CertificateSource: &CertificateSource{Type: SourceFile, CertPath: "c", KeyPath: "k"}}
	c := v.Clone()
	if c.HTTPToHTTPS == v.HTTPToHTTPS || c.TLSEnabled == v.TLSEnabled || c.CertificateSource == v.CertificateSource {
		t.Fatal("VirtualHost.Clone shares pointers with the original")
	}
	if !reflect.DeepEqual(c, v) {
		t.Errorf("Clone = %+v, want %+v", c, v)
	}
}

func TestRedirectAndTLSDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		v            VirtualHost
		wantRedirect bool
		wantTLS      bool
	}{
		{name: "unset", v: VirtualHost{}, wantRedirect: true, wantTLS: true},
		{name: "true", v: VirtualHost{HTTPToHTTPS: ptr(true), TLSEnabled: ptr(true)}, wantRedirect: true, wantTLS: true},
		{name: "false", v: VirtualHost{HTTPToHTTPS: ptr(false), TLSEnabled: ptr(false)}, wantRedirect: false, wantTLS: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.v.Redirect(); got != tt.wantRedirect {
				t.Errorf("Redirect() = %v, want %v", got, tt.wantRedirect)
			}
			if got := tt.v.TLS(); got != tt.wantTLS {
				t.Errorf("TLS() = %v, want %v", got, tt.wantTLS)
			}
		})
	}
}

func TestHostBackendSort(t *testing.T) {
	t.Parallel()
	c := mustParse(t, readTestdata(t, "manual_tls.toml"))
	if h := c.Host("api.example.com"); h == nil || h.EnabledBackendsTag != "api" {
		t.Errorf(`Host("api.example.com") = %+v`, h)
	}
	if h := c.Host("nope.example.com"); h != nil {
		t.Errorf(`Host("nope.example.com") = %+v, want nil`, h)
	}
	if b := c.Backend("api-1"); b == nil || b.Address != "10.0.2.10:8080" || !b.HasTag("api") || b.HasTag("main") {
		t.Errorf(`Backend("api-1") = %+v`, b)
	}
	if b := c.Backend("nope"); b != nil {
		t.Errorf(`Backend("nope") = %+v, want nil`, b)
	}
	// Host returns a pointer into the config, so an edit through it sticks.
	c.Host("example.com").EnabledBackendsTag = "x"
	if c.VirtualHosts[0].EnabledBackendsTag != "x" {
		t.Error("Host() does not point into the config")
	}
	c.Sort()
	var domains, ids []string
	for _, v := range c.VirtualHosts {
		domains = append(domains, v.Domain)
	}
	for _, b := range c.Backends {
		ids = append(ids, b.ID)
	}
	if want := []string{"api.example.com", "blog.example.com", "example.com"}; !reflect.DeepEqual(domains, want) {
		t.Errorf("sorted domains = %q, want %q", domains, want)
	}
	if want := []string{"api-1", "blog-1", "web-1", "web-2"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("sorted ids = %q, want %q", ids, want)
	}
}
