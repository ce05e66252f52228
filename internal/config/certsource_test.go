package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// dualDoc is a host with an ECDSA primary and an RSA additional chain.
const dualDoc = minimal + `
[lets_encrypt]
key_types = ["ecdsa", "rsa"]
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
type = "file"
cert_path = "/etc/fronttier/example.com.ecdsa.pem"
key_path  = "/etc/fronttier/example.com.ecdsa.key"
[[virtual_hosts.certificate_source.additional]]
cert_path = "/etc/fronttier/example.com.rsa.pem"
key_path  = "/etc/fronttier/example.com.rsa.key"
`

func TestParseAdditionalChainsAndKeyTypes(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(dualDoc))
	want := &CertificateSource{Type: SourceFile,
		CertPath: "/etc/fronttier/example.com.ecdsa.pem", KeyPath: "/etc/fronttier/example.com.ecdsa.key",
		Additional: []CertificateFiles{{CertPath: "/etc/fronttier/example.com.rsa.pem", KeyPath: "/etc/fronttier/example.com.rsa.key"}}}
	if got := c.VirtualHosts[0].CertificateSource; !reflect.DeepEqual(got, want) {
		t.Errorf("certificate_source = %+v, want %+v", got, want)
	}
	if got := c.LetsEncrypt.KeyTypes; !reflect.DeepEqual(got, []string{KeyTypeECDSA, KeyTypeRSA}) {
		t.Errorf("key_types = %q", got)
	}

	// Written back and read again, unchanged; the default writes no
	// key_types at all.
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if back := mustParse(t, out); !reflect.DeepEqual(back.VirtualHosts, c.VirtualHosts) || !reflect.DeepEqual(back.LetsEncrypt, c.LetsEncrypt) {
		t.Errorf("round trip changed the config:\n%s", out)
	}
	if out, _ := Marshal(mustParse(t, []byte(minimal))); strings.Contains(string(out), "key_types") || strings.Contains(string(out), "additional") {
		t.Errorf("the defaults write key_types or additional:\n%s", out)
	}
}

func TestCertificateSourceJSON(t *testing.T) {
	t.Parallel()
	in := `{"type":"file","cert_path":"/e.pem","key_path":"/e.key","additional":[{"cert_path":"/r.pem","key_path":"/r.key"}]}`
	var s CertificateSource
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Additional) != 1 || s.Additional[0] != (CertificateFiles{CertPath: "/r.pem", KeyPath: "/r.key"}) {
		t.Errorf("decoded %+v", s)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("encoded %s, want %s", out, in)
	}
	out, _ = json.Marshal(&CertificateSource{Type: SourceLetsEncrypt})
	if string(out) != `{"type":"lets_encrypt"}` {
		t.Errorf("a source without additional chains encodes as %s", out)
	}
}

func TestCertificateSourceEqualAndClone(t *testing.T) {
	t.Parallel()
	a := &CertificateSource{Type: SourceFile, CertPath: "/e", KeyPath: "/k",
		Additional: []CertificateFiles{{CertPath: "/r", KeyPath: "/rk"}}}
	v := VirtualHost{Domain: "example.com", CertificateSource: a}
	c := v.Clone()
	if !c.CertificateSource.Equal(a) {
		t.Fatal("a clone differs")
	}
	c.CertificateSource.Additional[0].CertPath = "/other"
	if a.Additional[0].CertPath != "/r" {
		t.Error("Clone shares the additional chains")
	}
	if c.CertificateSource.Equal(a) {
		t.Error("Equal ignores the additional chains")
	}
	var none *CertificateSource
	if !none.Equal(nil) || none.Equal(a) || a.Equal(nil) {
		t.Error("Equal with nil")
	}
}

func TestValidateAdditionalChainsAndKeyTypes(t *testing.T) {
	t.Parallel()
	host := func(source string) string {
		return minimal + `
[[virtual_hosts]]
domain = "a.example.com"
enabled_backends_tag = "a"
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.certificate_source]
` + source
	}
	tests := []struct {
		name     string
		doc      string
		wantErrs []string
	}{
		{
			name: "additional without paths",
			doc: host(`type = "file"
cert_path = "/e.pem"
key_path = "/e.key"
[[virtual_hosts.certificate_source.additional]]
cert_path = "/r.pem"
[[virtual_hosts.certificate_source.additional]]
key_path = "/x.key"
`),
			wantErrs: []string{
				"virtual_hosts[1].certificate_source.additional[0].key_path: required",
				"virtual_hosts[1].certificate_source.additional[1].cert_path: required",
			},
		},
		{
			name: "additional repeats the primary",
			doc: host(`type = "file"
cert_path = "/e.pem"
key_path = "/e.key"
[[virtual_hosts.certificate_source.additional]]
cert_path = "/e.pem"
key_path = "/e.key"
`),
			wantErrs: []string{`virtual_hosts[1].certificate_source.additional[0].cert_path: "/e.pem" is the primary chain`},
		},
		{
			name: "additional listed twice",
			doc: host(`type = "file"
cert_path = "/e.pem"
key_path = "/e.key"
[[virtual_hosts.certificate_source.additional]]
cert_path = "/r.pem"
key_path = "/r.key"
[[virtual_hosts.certificate_source.additional]]
cert_path = "/r.pem"
key_path = "/r.key"
`),
			wantErrs: []string{`virtual_hosts[1].certificate_source.additional[1].cert_path: "/r.pem" is listed twice`},
		},
		{
			name: "too many additional chains",
			doc: host(`type = "file"
cert_path = "/e.pem"
key_path = "/e.key"
additional = [{cert_path = "/1", key_path = "/1k"}, {cert_path = "/2", key_path = "/2k"}, {cert_path = "/3", key_path = "/3k"}]
`),
			wantErrs: []string{"virtual_hosts[1].certificate_source.additional: 3 chains"},
		},
		{
			name: "additional path with a control character",
			doc: host(`type = "file"
cert_path = "/e.pem"
key_path = "/e.key"
additional = [{cert_path = "/r\npem", key_path = "/r.key"}]
`),
			wantErrs: []string{"virtual_hosts[1].certificate_source.additional[0].cert_path:", "control character"},
		},
		{
			name: "additional with lets_encrypt",
			doc: host(`type = "lets_encrypt"
additional = [{cert_path = "/r.pem", key_path = "/r.key"}]
`),
			wantErrs: []string{`virtual_hosts[1].certificate_source.additional: applies only to type "file"`},
		},
		{
			name:     "unknown key type",
			doc:      minimal + "[lets_encrypt]\nkey_types = [\"ecdsa\", \"ed25519\"]\n",
			wantErrs: []string{`lets_encrypt.key_types[1]: "ed25519" is not one of "ecdsa", "rsa"`},
		},
		{
			name:     "key type twice",
			doc:      minimal + "[lets_encrypt]\nkey_types = [\"rsa\", \"rsa\"]\n",
			wantErrs: []string{`lets_encrypt.key_types[1]: "rsa" is listed twice`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\ndoes not contain %q", err, want)
				}
			}
		})
	}
	for _, ok := range []string{
		minimal + "[lets_encrypt]\nkey_types = [\"rsa\"]\n",
		minimal + "[lets_encrypt]\nkey_types = [\"rsa\", \"ecdsa\"]\n",
		minimal + "[lets_encrypt]\nkey_types = []\n",
	} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
}
