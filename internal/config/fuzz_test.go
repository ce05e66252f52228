package config

import (
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives Marshal and Parse unchanged: what the API writes back must read
// back as the same configuration. Seeds: testdata/fuzz/FuzzParse (the
// manual's examples, the repository's example, edge cases).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of a parsed config: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\ndocument:\n%s", err, out)
		}
		if !reflect.DeepEqual(canonical(back), canonical(c)) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v\ndocument:\n%s", back, c, out)
		}
	})
}

// canonical returns a copy of c in which absent lists are empty ones: Marshal
// writes "tags = []" for a backend without tags, and Parse reads that back as
// an empty list; both mean the same.
func canonical(c *Config) *Config {
	c = c.Clone()
	if c.VirtualHosts == nil {
		c.VirtualHosts = []VirtualHost{}
	}
	if c.Backends == nil {
		c.Backends = []Backend{}
	}
	for i := range c.Backends {
		if c.Backends[i].Tags == nil {
			c.Backends[i].Tags = []string{}
		}
	}
	return c
}
