package config

import (
	"reflect"
	"strings"
	"testing"
)

const canaryDoc = minimal + `
[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "a"
[virtual_hosts.canary]
tag = "b"
percent = 0.5
[virtual_hosts.sticky]
by = "header:X-User-Id"
backend = true
[[virtual_hosts.overrides]]
header = "X-Canary"
value = "1"
tag = "b"
[[virtual_hosts.overrides]]
cookie = "beta"
value = "yes"
tag = "c"
[[virtual_hosts.overrides]]
query = "canary"
value = "0"
tag = "a"
[[backends]]
id = "a1"
address = "127.0.0.1:8001"
tags = ["a", "b"]
`

func TestParseCanary(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(canaryDoc))
	v := c.VirtualHosts[0]
	if want := (Canary{Tag: "b", Percent: 0.5}); v.Canary == nil || *v.Canary != want {
		t.Errorf("canary = %+v, want %+v", v.Canary, want)
	}
	if kind, h := v.Sticky.Key(); kind != StickyHeader || h != "X-User-Id" || !v.Sticky.Backend {
		t.Errorf("sticky = %+v (key %q %q), want header X-User-Id with backend affinity", v.Sticky, kind, h)
	}
	want := []Override{
		{Header: "X-Canary", Value: "1", Tag: "b"},
		{Cookie: "beta", Value: "yes", Tag: "c"},
		{Query: "canary", Value: "0", Tag: "a"},
	}
	if !reflect.DeepEqual(v.Overrides, want) {
		t.Errorf("overrides = %+v, want %+v", v.Overrides, want)
	}
	if got := v.Tags(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Tags() = %q, want a, b, c", got)
	}
}

// TestCanaryRoundTrip checks that the new sections survive Marshal and
// that a host without them is written exactly as before (no empty
// sections), so existing files round-trip unchanged.
func TestCanaryRoundTrip(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(canaryDoc))
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if back := mustParse(t, out); !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v\n%s", back, c, out)
	}
	plain := mustParse(t, []byte(minimal+"[[virtual_hosts]]\ndomain = \"example.com\"\nenabled_backends_tag = \"a\"\n"))
	out, err = Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"canary", "sticky", "overrides"} {
		if strings.Contains(string(out), key) {
			t.Errorf("a host without %s is written with it:\n%s", key, out)
		}
	}
}

func TestCanaryInvalid(t *testing.T) {
	t.Parallel()
	host := minimal + "[[virtual_hosts]]\ndomain = \"example.com\"\nenabled_backends_tag = \"a\"\n"
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"canary on the enabled tag", host + "[virtual_hosts.canary]\ntag = \"a\"\npercent = 10\n",
			`virtual_hosts[0].canary.tag: "a" is enabled_backends_tag already`},
		{"canary without tag", host + "[virtual_hosts.canary]\npercent = 10\n", "virtual_hosts[0].canary.tag: must not be empty"},
		{"bad canary tag", host + "[virtual_hosts.canary]\ntag = \"b c\"\npercent = 10\n", "virtual_hosts[0].canary.tag:"},
		{"percent over 100", host + "[virtual_hosts.canary]\ntag = \"b\"\npercent = 100.5\n", "virtual_hosts[0].canary.percent: 100.5 is not between 0 and 100"},
		{"negative percent", host + "[virtual_hosts.canary]\ntag = \"b\"\npercent = -1\n", "virtual_hosts[0].canary.percent: -1 is not between 0 and 100"},
		{"NaN percent", host + "[virtual_hosts.canary]\ntag = \"b\"\npercent = nan\n", "virtual_hosts[0].canary.percent: NaN"},
		{"too fine", host + "[virtual_hosts.canary]\ntag = \"b\"\npercent = 0.005\n", "virtual_hosts[0].canary.percent: 0.005 is finer than 0.01"},
		{"sticky by", host + "[virtual_hosts.sticky]\nby = \"session\"\n", `virtual_hosts[0].sticky.by: "session" is not one of`},
		{"sticky header name", host + "[virtual_hosts.sticky]\nby = \"header:X User\"\n", `virtual_hosts[0].sticky.by: "header:X User"`},
		{"sticky empty header", host + "[virtual_hosts.sticky]\nby = \"header:\"\n", `virtual_hosts[0].sticky.by: "header:": must not be empty`},
		{"override with two matchers", host + "[[virtual_hosts.overrides]]\nheader = \"X-Canary\"\ncookie = \"beta\"\nvalue = \"1\"\ntag = \"b\"\n",
			"virtual_hosts[0].overrides[0]: set exactly one of header, cookie and query (2 are set)"},
		{"override with no matcher", host + "[[virtual_hosts.overrides]]\nvalue = \"1\"\ntag = \"b\"\n",
			"virtual_hosts[0].overrides[0]: set exactly one of header, cookie and query (0 are set)"},
		{"override without value", host + "[[virtual_hosts.overrides]]\nquery = \"canary\"\ntag = \"b\"\n", "virtual_hosts[0].overrides[0].value: must not be empty"},
		{"override without tag", host + "[[virtual_hosts.overrides]]\nquery = \"canary\"\nvalue = \"1\"\n", "virtual_hosts[0].overrides[0].tag: must not be empty"},
		{"override header name", host + "[[virtual_hosts.overrides]]\nheader = \"X:C\"\nvalue = \"1\"\ntag = \"b\"\n", `virtual_hosts[0].overrides[0].header: "X:C" has ':'`},
		{"override value control", host + "[[virtual_hosts.overrides]]\ncookie = \"beta\"\nvalue = \"a\\nb\"\ntag = \"b\"\n", "virtual_hosts[0].overrides[0].value:"},
		{"unknown canary key", host + "[virtual_hosts.canary]\ntag = \"b\"\nshare = 10\n", "virtual_hosts.canary.share: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPercent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p  float64
		ok bool
	}{
		{0, true}, {0.01, true}, {0.29, true}, {10, true}, {33.33, true}, {99.99, true}, {100, true},
		{0.001, false}, {12.345, false}, {-0.01, false}, {100.01, false},
	} {
		if err := CheckPercent(tt.p); (err == nil) != tt.ok {
			t.Errorf("CheckPercent(%v) = %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}

func TestTooManyOverrides(t *testing.T) {
	t.Parallel()
	v := VirtualHost{Domain: "example.com", EnabledBackendsTag: "a"}
	for range MaxOverrides + 1 {
		v.Overrides = append(v.Overrides, Override{Header: "X-Canary", Value: "1", Tag: "b"})
	}
	if err := v.Validate(nil); err == nil || !strings.Contains(err.Error(), "overrides: 33 overrides") {
		t.Errorf("Validate = %v, want the count refused", err)
	}
}

func TestCanaryCloneIsDeep(t *testing.T) {
	t.Parallel()
	v := mustParse(t, []byte(canaryDoc)).VirtualHosts[0]
	pristine := mustParse(t, []byte(canaryDoc)).VirtualHosts[0]
	c := v.Clone()
	c.Canary.Percent = 50
	c.Sticky.By = StickyIP
	c.Overrides[0].Value = "mutated"
	if !reflect.DeepEqual(v, pristine) {
		t.Errorf("mutating the clone changed the original: %+v", v)
	}
}

func TestStickyKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s          *Sticky
		kind, name string
	}{
		{nil, StickyCookie, ""},
		{&Sticky{}, StickyCookie, ""},
		{&Sticky{By: "cookie"}, StickyCookie, ""},
		{&Sticky{By: "header:X-User-Id"}, StickyHeader, "X-User-Id"},
		{&Sticky{By: "ip"}, StickyIP, ""},
		{&Sticky{By: "none"}, StickyNone, ""},
	} {
		if kind, name := tt.s.Key(); kind != tt.kind || name != tt.name {
			t.Errorf("%+v.Key() = %q, %q; want %q, %q", tt.s, kind, name, tt.kind, tt.name)
		}
	}
}
