package wal

import (
	"bytes"
	"testing"
)

// FuzzDecodeSegment: any bytes on disk decode without panicking, every
// record that decodes re-encodes to the same frame, and a history never
// holds records of two incarnations.
func FuzzDecodeSegment(f *testing.F) {
	seed := []byte(segmentMagic)
	seed = appendFrame(seed, &Record{Kind: kindBegin, Origin: 1, Incarnation: 1})
	seed = appendFrame(seed, &Record{Kind: kindEvent, Origin: 1, Incarnation: 1, InputSeq: 1, Payload: []byte("p"), Readings: []byte("r")})
	f.Add(seed)
	f.Add(seed[:len(seed)-2])
	f.Add([]byte(segmentMagic + "\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j := &Journal{}
		rec := &Recovered{Histories: map[uint64][]Record{}}
		seg := &segment{max: map[histKey]uint64{}}
		good, _ := j.decodeSegment(data, seg, rec, map[uint64]uint64{})
		if good > len(data) {
			t.Fatalf("decoded %d of %d bytes", good, len(data))
		}
		for _, h := range rec.Histories {
			for _, r := range h {
				if r.Incarnation != h[0].Incarnation {
					t.Fatal("a history mixes incarnations")
				}
				frame := appendFrame(nil, &r)
				if !bytes.Contains(data, frame) {
					t.Fatalf("record %+v does not re-encode to its bytes", r)
				}
			}
		}
	})
}
