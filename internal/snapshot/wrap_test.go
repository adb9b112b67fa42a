package snapshot

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// A validly signed snapshot whose chain or input sequence is at its maximum
// is refused: restoring it would wrap the next sequence to 0.
func TestDecodeRefusesSequencesThatWouldWrap(t *testing.T) {
	id := testID(t, 7)
	for _, field := range []struct {
		name string
		off  int
	}{{"snapshot sequence", offSequence}, {"input sequence", offInputSeq}, {"chain sequence", offChainHead + 8}} {
		b := mustEncode(t, cooperativeSnapshot(id), id)
		binary.LittleEndian.PutUint64(b[field.off:], math.MaxUint64)
		b = resign(b, id)
		_, err := Decode(b, DefaultLimits())
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "wrap") {
			t.Errorf("%s = MaxUint64: Decode got %v, want a wrap refusal", field.name, err)
		}
		// One below the maximum still decodes: the limit is the wrap, no lower.
		binary.LittleEndian.PutUint64(b[field.off:], math.MaxUint64-1)
		b = resign(b, id)
		if _, err := Decode(b, DefaultLimits()); err != nil && strings.Contains(err.Error(), "wrap") {
			t.Errorf("%s = MaxUint64-1 refused as a wrap: %v", field.name, err)
		}
	}
	s := cooperativeSnapshot(id)
	s.InputSeq = math.MaxUint64
	if _, err := Encode(s, id); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode of InputSeq MaxUint64 got %v, want ErrInvalid", err)
	}
}
