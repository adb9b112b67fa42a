package cluster

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

// Filters come from the CLI (--on) and the admin API. An accepted filter is
// valid, and its String form parses back to the same filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "gpu", "gpu,zone=eu-1,memory_gb>=32", " a , b=c=d ", "memory_gb=>32", "a==b",
		"a>=1e308,b>=-0", "a>=NaN", "a>=0x1p3", "k=v,k>=1", "gpu,gpu", "a!=b", "x>=1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("error %v is not ErrInvalidFilter", err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("ParseFilter(%q) accepted an invalid filter: %v", s, err)
		}
		back, err := ParseFilter(flt.String())
		if err != nil {
			t.Fatalf("String %q of an accepted filter does not parse: %v", flt.String(), err)
		}
		if !slices.Equal(back.RequireTags, flt.RequireTags) || !maps.Equal(back.Equal, flt.Equal) || !maps.Equal(back.Min, flt.Min) {
			t.Fatalf("%q -> %+v -> %q -> %+v", s, flt, flt.String(), back)
		}
	})
}

// Capabilities come from the CLI (--cap) and travel in gossip metadata. An
// accepted set is valid, and its String form parses back to the same set.
func FuzzParseCapabilities(f *testing.F) {
	for _, s := range []string{"", "gpu", "gpu,zone=eu-1", "zone=a=b", " a , a ", "a=1,a=2", "a=1,a=1", "=x", "a=", "-a"} {
		f.Add(s, "")
		f.Add(s, "b=2")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := ParseCapabilities(a, b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCapabilities) {
				t.Fatalf("error %v is not ErrInvalidCapabilities", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid set: %v", err)
		}
		back, err := ParseCapabilities(c.String())
		if err != nil {
			t.Fatalf("String %q of an accepted set does not parse: %v", c.String(), err)
		}
		if !back.Equal(c) || back.String() != c.String() {
			t.Fatalf("%q,%q -> %q -> %q", a, b, c.String(), back.String())
		}
	})
}
