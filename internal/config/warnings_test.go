package config

import (
	"reflect"
	"testing"
)

func TestWarnings(t *testing.T) {
	t.Parallel()
	c := Default()
	c.VirtualHosts = []VirtualHost{
		{Domain: "ok.example.com", EnabledBackendsTag: "a"},
		{Domain: "typo.example.com", EnabledBackendsTag: "aa"},
	}
	c.Backends = []Backend{{ID: "b1", Address: "127.0.0.1:1", Tags: []string{"a"}}}
	want := []string{`virtual_hosts[1].enabled_backends_tag: no backend carries tag "aa", so typo.example.com answers 503`}
	if got := c.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
	c.VirtualHosts = c.VirtualHosts[:1]
	if got := c.Warnings(); len(got) != 0 {
		t.Errorf("Warnings() = %q, want none", got)
	}
}
