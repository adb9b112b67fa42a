package driver

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Large inputs that do not compress travel raw, without zstd's time;
// those that do, and small ones, are compressed; both unpack to the input.
func TestPackSkipsIncompressible(t *testing.T) {
	p, err := newPacker()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	rnd := make([]byte, 4<<20)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(rnd)
	clear(rnd[:64<<10]) // an empty page among random ones
	text := bytes.Repeat([]byte("wasmesh daemon state "), 200000)
	for _, tc := range []struct {
		name string
		in   []byte
		want byte
	}{
		{"random", rnd, packRaw},
		{"repetitive", text, packZstd},
		{"small-random", rnd[1<<20 : 1<<20+4096], packRaw}, // tried, and no smaller
	} {
		out := p.pack(tc.in)
		if out[0] != tc.want {
			t.Fatalf("%s: packed as %d, want %d", tc.name, out[0], tc.want)
		}
		back, err := p.unpack(out)
		if err != nil || !bytes.Equal(back, tc.in) {
			t.Fatalf("%s: unpack: %v", tc.name, err)
		}
	}
}
