package cluster

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestParseCapabilities(t *testing.T) {
	c, err := ParseCapabilities("gpu", "zone=eu-1,memory_gb=64", " ssd , gpu ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gpu", "ssd"}; !slices.Equal(c.Tags, want) {
		t.Errorf("tags = %v, want %v", c.Tags, want)
	}
	if want := map[string]string{"zone": "eu-1", "memory_gb": "64"}; !maps.Equal(c.Values, want) {
		t.Errorf("values = %v, want %v", c.Values, want)
	}
	if got, want := c.String(), "gpu,ssd,memory_gb=64,zone=eu-1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	back, err := ParseCapabilities(c.String())
	if err != nil || !back.Equal(c) {
		t.Errorf("round trip: %v %v", back, err)
	}
	if !c.Has("gpu") || !c.Has("zone") || c.Has("tpu") {
		t.Errorf("Has wrong: %v", c)
	}

	empty, err := ParseCapabilities("", " , ")
	if err != nil || len(empty.Tags) != 0 || len(empty.Values) != 0 {
		t.Errorf("empty input: %v %v", empty, err)
	}
}

func TestParseCapabilitiesErrors(t *testing.T) {
	for _, in := range []string{
		"zone=",         // empty value
		"=eu-1",         // empty key
		"-gpu",          // bad first char
		"g pu",          // space in name
		"zone=eu 1",     // space in value
		"zone=a,zone=b", // contradiction
		"gpu!",          // bad char
		string(make([]byte, MaxNameLen+1)),
	} {
		if _, err := ParseCapabilities(in); !errors.Is(err, ErrInvalidCapabilities) {
			t.Errorf("ParseCapabilities(%q) err = %v, want ErrInvalidCapabilities", in, err)
		}
	}
	// The same value given twice is harmless.
	if _, err := ParseCapabilities("zone=a,zone=a"); err != nil {
		t.Errorf("repeated identical value: %v", err)
	}
}

func TestCapabilitiesLimit(t *testing.T) {
	var c Capabilities
	for i := range MaxCapabilities + 1 {
		c.Tags = append(c.Tags, "t"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if err := c.Validate(); !errors.Is(err, ErrInvalidCapabilities) {
		t.Fatalf("Validate with %d entries: %v", len(c.Tags), err)
	}
}
