package abi

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func TestOriginHashDerivation(t *testing.T) {
	var id [32]byte
	for i := range id {
		id[i] = byte(i)
	}
	sum := sha256.Sum256(append([]byte(OriginDomain+"\x00"), id[:]...))
	if got, want := OriginHash(id), binary.LittleEndian.Uint64(sum[:8]); got != want {
		t.Fatalf("OriginHash = %x, want %x (documented derivation)", got, want)
	}
	s := FormatOrigin(OriginHash(id))
	back, err := ParseOrigin(s)
	if err != nil || back != OriginHash(id) || len(s) != 16 {
		t.Fatalf("format/parse %q: %x %v", s, back, err)
	}
	for _, bad := range []string{"", "123", "zzzzzzzzzzzzzzzz", "00000000000000000"} {
		if _, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) accepted", bad)
		}
	}
}
