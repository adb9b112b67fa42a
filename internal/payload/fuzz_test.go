package payload

import (
	"bytes"
	"errors"
	"testing"
)

// Payloads come from the command line and stdin. For every format, decoding
// what Encode renders gives the bytes back, and whatever Decode accepts
// survives an Encode/Decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "hello", "00ff", " 00FF\n", "0", "zz", "aGk=", "aGk", "aG\nk=", "aGl=", "\xff\xfe"} {
		f.Add(s, []byte(s))
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		for _, fm := range []Format{Text, Hex, Base64} {
			if back, err := fm.Decode(fm.Encode(raw)); err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("%s: Decode(Encode(%x)) = %x, %v", fm, raw, back, err)
			}
			b, err := fm.Decode(s)
			if err != nil {
				if !errors.Is(err, ErrBadFormat) {
					t.Fatalf("%s: error %v is not ErrBadFormat", fm, err)
				}
				if fm == Text {
					t.Fatalf("text refused %q", s)
				}
				continue
			}
			again, err := fm.Decode(fm.Encode(b))
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s: %q decodes to %x, which does not round trip: %x, %v", fm, s, b, again, err)
			}
		}
		if _, err := Format(s).Decode("x"); err == nil {
			if _, perr := ParseFormat(s); perr != nil {
				t.Fatalf("Format(%q).Decode works but ParseFormat refuses it", s)
			}
		}
	})
}
