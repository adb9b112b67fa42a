package slab

import (
	"bytes"
	"testing"
)

func TestCopiesAreIndependent(t *testing.T) {
	var s Bytes
	a := s.Copy([]byte("abc"))
	b := s.Copy([]byte("de"))
	if string(a) != "abc" || string(b) != "de" || cap(a) != 3 {
		t.Fatalf("a %q (cap %d), b %q", a, cap(a), b)
	}
	// An append to a copy must not run into the next one.
	a = append(a, 'X')
	if string(b) != "de" {
		t.Fatalf("append to a overwrote b: %q", b)
	}
	if e := s.Copy(nil); e == nil || len(e) != 0 {
		t.Fatalf("empty copy %v", e)
	}
	big := bytes.Repeat([]byte("z"), chunkSize)
	if c := s.Copy(big); !bytes.Equal(c, big) {
		t.Fatal("large copy differs")
	}
	// Many copies across chunk boundaries keep their contents.
	var got [][]byte
	for i := range 20000 {
		got = append(got, s.Copy(bytes.Repeat([]byte{byte(i)}, i%50)))
	}
	for i, g := range got {
		if !bytes.Equal(g, bytes.Repeat([]byte{byte(i)}, i%50)) {
			t.Fatalf("copy %d changed", i)
		}
	}
}
