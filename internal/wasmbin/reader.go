package wasmbin

import "unicode/utf8"

// reader decodes the primitive encodings of the binary format. base is the
// absolute offset of b[0] so errors name module offsets.
type reader struct {
	b    []byte
	pos  int
	base int
}

func (r *reader) off() int       { return r.base + r.pos }
func (r *reader) remaining() int { return len(r.b) - r.pos }
func (r *reader) eof() bool      { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, malformed(r.off(), "unexpected end")
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, malformed(r.off(), "length %d exceeds the %d bytes left", n, r.remaining())
	}
	s := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return s, nil
}

// u32 decodes an unsigned LEB128 of at most 5 bytes whose value fits 32 bits.
// Redundant zero padding within the 5 bytes is allowed (linkers emit it).
func (r *reader) u32() (uint32, error) {
	start := r.off()
	var v uint32
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 {
			if c&0x80 != 0 {
				return 0, malformed(start, "integer representation too long")
			}
			if c&0x70 != 0 {
				return 0, malformed(start, "integer too large")
			}
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, malformed(start, "integer representation too long")
}

// u64 decodes an unsigned LEB128 of at most 10 bytes.
func (r *reader) u64() (uint64, error) {
	start := r.off()
	var v uint64
	for i := 0; i < 10; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 9 {
			if c&0x80 != 0 {
				return 0, malformed(start, "integer representation too long")
			}
			if c&0x7e != 0 {
				return 0, malformed(start, "integer too large")
			}
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, malformed(start, "integer representation too long")
}

// sleb decodes a signed LEB128 of width bits (32, 33 or 64). The unused bits
// of the last permitted byte must be a sign extension.
func (r *reader) sleb(width int) (int64, error) {
	start := r.off()
	maxBytes := (width + 6) / 7
	var v int64
	shift := 0
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == maxBytes-1 {
			if c&0x80 != 0 {
				return 0, malformed(start, "integer representation too long")
			}
			// Bits of this byte at and above position `used` must all equal
			// the sign bit (position used-1).
			used := width - 7*i
			mask := byte(0x7f) &^ (byte(1)<<used - 1) // bits used..6
			sign := c & (1 << (used - 1))
			if sign == 0 && c&mask != 0 || sign != 0 && c&mask != mask {
				return 0, malformed(start, "integer too large")
			}
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, malformed(start, "integer representation too long")
}

func (r *reader) s32() (int32, error) {
	v, err := r.sleb(32)
	return int32(v), err
}

func (r *reader) s64() (int64, error) { return r.sleb(64) }

// count reads a vector length and refuses one that could not fit in what is
// left, given that each element takes at least minSize bytes. Callers may then
// allocate count elements safely.
func (r *reader) count(minSize int) (int, error) {
	at := r.off()
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if minSize > 0 && uint64(n)*uint64(minSize) > uint64(r.remaining()) {
		return 0, malformed(at, "count %d exceeds the %d bytes left", n, r.remaining())
	}
	return int(n), nil
}

func (r *reader) name() (string, error) {
	at := r.off()
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", malformed(at, "name is not valid UTF-8")
	}
	return string(b), nil
}
