package wasmbin

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecodeNames(t *testing.T) {
	n := &Names{Module: "m", HasModule: true, Funcs: []NameAssoc{{0, "f"}, {3, "g"}},
		Locals: []IndirectNameAssoc{{0, []NameAssoc{{1, "x"}}}}, Other: []NameSubsection{{7, []byte{1, 0, 1, 'g'}}}}
	got, err := DecodeNames(n.Encode())
	if err != nil || !reflect.DeepEqual(got, n) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"out of order":   {1, 1, 0, 0, 2, 'm', 'x'},
		"repeated":       {1, 1, 0, 1, 1, 0},
		"short":          {1, 5, 1, 0},
		"left over":      {0, 3, 1, 'm', 'x'},
		"bad utf8":       {0, 2, 1, 0xff},
		"count too high": {1, 1, 9},
	} {
		if _, err := DecodeNames(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
