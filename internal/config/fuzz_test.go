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

// canonical returns a copy of c in which every absent list is an empty one:
// Marshal writes "tags = []" for a backend without tags, Parse reads that
// back as an empty list, and an omitempty list goes the other way; both
// mean the same.
func canonical(c *Config) *Config {
	c = c.Clone()
	fillNilSlices(reflect.ValueOf(c).Elem())
	return c
}

func fillNilSlices(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fillNilSlices(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillNilSlices(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		for i := range v.Len() {
			fillNilSlices(v.Index(i))
		}
	}
}
