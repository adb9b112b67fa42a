package cluster

import (
	"errors"
	"maps"
	"math"
	"slices"
	"testing"
)

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter(" gpu , zone=eu-1, memory_gb>=32,ssd,gpu")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gpu", "ssd"}; !slices.Equal(f.RequireTags, want) {
		t.Errorf("tags = %v, want %v", f.RequireTags, want)
	}
	if want := map[string]string{"zone": "eu-1"}; !maps.Equal(f.Equal, want) {
		t.Errorf("equal = %v", f.Equal)
	}
	if want := map[string]float64{"memory_gb": 32}; !maps.Equal(f.Min, want) {
		t.Errorf("min = %v", f.Min)
	}
	if got, want := f.String(), "gpu,ssd,zone=eu-1,memory_gb>=32"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	empty, err := ParseFilter("")
	if err != nil || !empty.IsZero() {
		t.Errorf("empty filter: %+v %v", empty, err)
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, in := range []string{
		"memory_gb>32",             // unsupported operator
		"memory_gb<=32",            // unsupported operator
		"zone!=eu",                 // unsupported operator
		"zone==eu",                 // unsupported operator
		"memory_gb=>32",            // typo for >=
		"memory_gb>=lots",          // not a number
		"memory_gb>=NaN",           // not finite
		"memory_gb>=+Inf",          // not finite
		"zone=eu,zone=us",          // constrained twice
		"memory_gb>=1,memory_gb=2", // constrained twice
		"zone=",                    // empty value
		">=3",                      // no key
		"bad key",                  // space
	} {
		if _, err := ParseFilter(in); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ParseFilter(%q) err = %v, want ErrInvalidFilter", in, err)
		}
	}
}

func TestFilterMatchAndUnmet(t *testing.T) {
	f, err := ParseFilter("gpu,zone=eu-1,memory_gb>=32")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		caps  string
		unmet []string
	}{
		{"gpu,zone=eu-1,memory_gb=64", nil},
		{"gpu=a100,zone=eu-1,memory_gb=32", nil}, // value key satisfies the tag; bound inclusive
		{"zone=eu-1,memory_gb=64", []string{"gpu"}},
		{"gpu,zone=us-1,memory_gb=16", []string{"memory_gb>=32", "zone=eu-1"}},
		{"gpu,zone=eu-1,memory_gb=lots", []string{"memory_gb>=32"}}, // non-numeric never meets a minimum
		{"gpu,zone=eu-1,memory_gb=NaN", []string{"memory_gb>=32"}},
		{"", []string{"gpu", "memory_gb>=32", "zone=eu-1"}},
	}
	for _, tc := range cases {
		c, err := ParseCapabilities(tc.caps)
		if err != nil {
			t.Fatal(err)
		}
		got := f.Unmet(c)
		if !slices.Equal(got, tc.unmet) {
			t.Errorf("caps %q: Unmet = %v, want %v", tc.caps, got, tc.unmet)
		}
		if f.Match(c) != (len(tc.unmet) == 0) {
			t.Errorf("caps %q: Match disagrees with Unmet", tc.caps)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	bad := []Filter{
		{Min: map[string]float64{"x": math.NaN()}},
		{RequireTags: []string{""}},
		{Equal: map[string]string{"x": "a b"}},
		{Equal: map[string]string{"x": "1"}, Min: map[string]float64{"x": 1}},
	}
	for i, f := range bad {
		if err := f.Validate(); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("case %d: Validate = %v, want ErrInvalidFilter", i, err)
		}
	}
}
