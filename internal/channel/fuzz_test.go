package channel

import (
	"bytes"
	"errors"
	"testing"
)

// Decode sees whatever a peer sends. It must never panic, must refuse with
// ErrBadMessage only, and what it accepts must re-encode to the same bytes
// (one encoding per message, so nothing is hidden in a second form).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{WireVersion, byte(KindPublish), 1, 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		back, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(Decode(%x)) = %v", b, err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, back)
		}
	})
}
