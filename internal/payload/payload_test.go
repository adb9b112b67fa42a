package payload

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	data := []byte{0, 1, 2, 0xff, 'a', '\n'}
	for _, f := range []Format{Hex, Base64} {
		got, err := f.Decode(f.Encode(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s round trip = %x, %v", f, got, err)
		}
	}
	if got, _ := Text.Decode("hi"); string(got) != "hi" {
		t.Errorf("text decode = %q", got)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := ParseFormat("yaml"); !errors.Is(err, ErrBadFormat) {
		t.Errorf("ParseFormat(yaml) = %v", err)
	}
	if _, err := Hex.Decode("zz"); !errors.Is(err, ErrBadFormat) {
		t.Errorf("hex zz = %v", err)
	}
	if _, err := Base64.Decode("!!!"); !errors.Is(err, ErrBadFormat) {
		t.Errorf("base64 !!! = %v", err)
	}
	if f, err := ParseFormat("HEX"); err != nil || f != Hex {
		t.Errorf("ParseFormat(HEX) = %v, %v", f, err)
	}
}
