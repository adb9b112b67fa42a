// Package slab hands out many small byte copies from a few large
// allocations, for hot paths that copy a small payload per event: one
// allocation per chunk instead of one per copy.
package slab

// chunkSize is the size of one chunk; larger copies get their own.
const chunkSize = 64 << 10

// Bytes copies byte slices into shared chunks. A copy is capped at its
// length, so an append to it reallocates instead of overwriting the next
// one; a chunk stays alive while any copy from it does. The zero value is
// ready to use; a Bytes is not safe for concurrent use.
type Bytes struct {
	buf []byte
}

// Copy returns a copy of b (an empty, non-nil slice for an empty b).
func (s *Bytes) Copy(b []byte) []byte {
	n := len(b)
	if n > chunkSize/8 {
		return append(make([]byte, 0, n), b...)
	}
	if cap(s.buf)-len(s.buf) < n || s.buf == nil {
		s.buf = make([]byte, 0, chunkSize)
	}
	start := len(s.buf)
	s.buf = append(s.buf, b...)
	return s.buf[start : start+n : start+n]
}
