package wasmbin

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestLEB(t *testing.T) {
	type tc struct {
		in    []byte
		width string
		want  int64
		bad   bool
	}
	cases := []tc{
		{[]byte{0x00}, "u32", 0, false},
		{[]byte{0x80, 0x00}, "u32", 0, false}, // padding within 5 bytes is legal
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x00}, "u32", 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, "u32", 0, true}, // 6 bytes: overlong
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "u32", math.MaxUint32, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, "u32", 0, true}, // bit 32 set: overflow
		{[]byte{0xe5, 0x8e, 0x26}, "u32", 624485, false},
		{[]byte{0x80}, "u32", 0, true}, // truncated
		{[]byte{0x7f}, "s32", -1, false},
		{[]byte{0x3f}, "s32", 63, false},
		{[]byte{0xc0, 0x00}, "s32", 64, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, "s32", -1, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x78}, "s32", math.MinInt32, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x07}, "s32", math.MaxInt32, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "s32", 0, true}, // unused bits not a sign extension
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x70}, "s32", 0, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, "s32", 0, true},
		{[]byte{0x40}, "s33", -64, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "s33", math.MaxUint32, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, "s33", 0, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, "s64", math.MinInt64, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, "s64", math.MaxInt64, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "s64", 0, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, "s64", 0, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "u64", -1, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03}, "u64", 0, true},
	}
	for _, c := range cases {
		r := reader{b: c.in}
		var got int64
		var err error
		switch c.width {
		case "u32":
			var v uint32
			v, err = r.u32()
			got = int64(v)
		case "u64":
			var v uint64
			v, err = r.u64()
			got = int64(v)
		case "s32":
			var v int32
			v, err = r.s32()
			got = int64(v)
		case "s33":
			got, err = r.sleb(33)
		case "s64":
			got, err = r.s64()
		}
		if c.bad {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("%s % x: want malformed error, got %d, %v", c.width, c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want || !r.eof() {
			t.Errorf("%s % x: got %d, %v (eof %v), want %d", c.width, c.in, got, err, r.eof(), c.want)
		}
	}
}

func TestLEBRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		u := rng.Uint64() >> rng.UintN(64)
		s := int64(u)
		if rng.IntN(2) == 0 {
			s = -s
		}
		r := reader{b: AppendU64(nil, u)}
		if got, err := r.u64(); err != nil || got != u || !r.eof() {
			t.Fatalf("u64 %d: got %d %v", u, got, err)
		}
		r = reader{b: AppendS64(nil, s)}
		if got, err := r.s64(); err != nil || got != s || !r.eof() {
			t.Fatalf("s64 %d: got %d %v", s, got, err)
		}
		r = reader{b: AppendS32(nil, int32(s))}
		if got, err := r.s32(); err != nil || got != int32(s) || !r.eof() {
			t.Fatalf("s32 %d: got %d %v", int32(s), got, err)
		}
		r = reader{b: AppendU32(nil, uint32(u))}
		if got, err := r.u32(); err != nil || got != uint32(u) || !r.eof() {
			t.Fatalf("u32 %d: got %d %v", uint32(u), got, err)
		}
	}
}

func TestCountBoundsAllocation(t *testing.T) {
	r := reader{b: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}}
	if _, err := r.count(1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("count larger than input: got %v", err)
	}
	r = reader{b: []byte{0x03, 1, 2, 3}}
	if n, err := r.count(1); err != nil || n != 3 {
		t.Fatalf("count 3: got %d %v", n, err)
	}
	r = reader{b: []byte{0x02, 1, 2, 3}}
	if _, err := r.count(2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("count 2 of min size 2 in 3 bytes: got %v", err)
	}
	r = reader{b: []byte{0x02, 0xc3, 0xa9, 0xff}}
	if s, err := r.name(); err != nil || s != "é" {
		t.Fatalf("utf-8 name: %q %v", s, err)
	}
	r = reader{b: []byte{0x02, 0xc3, 0x28}}
	if _, err := r.name(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid utf-8 name accepted: %v", err)
	}
}
