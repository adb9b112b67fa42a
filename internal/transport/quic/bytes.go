package meshquic

import (
	"encoding/binary"
	"fmt"
)

// SendBytes sends b as one data frame holding a msgpack bin value (the same
// encoding Send(b) produces) without copying b into a frame buffer: bulk
// flows (module bytes, snapshot chunks) avoid a copy per chunk.
func (s *Stream) SendBytes(b []byte) error {
	// length prefix | kind | bin32 marker | bin length
	const prefix = frameHeaderSize + 1 + 1 + 4
	n := 1 + 1 + 4 + len(b)
	if n > s.maxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, s.maxFrame)
	}
	var hdr [prefix]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(n))
	hdr[4] = kindData
	hdr[5] = 0xc6 // msgpack bin32
	binary.BigEndian.PutUint32(hdr[6:], uint32(len(b)))
	if _, err := s.qs.Write(hdr[:]); err != nil {
		return s.mapErr(err)
	}
	if _, err := s.qs.Write(b); err != nil {
		return s.mapErr(err)
	}
	return nil
}

// RecvBytes reads one data frame holding a msgpack bin value and appends
// its content to dst, without an intermediate allocation.
func (s *Stream) RecvBytes(dst []byte) ([]byte, error) {
	var raw rawBody
	if err := s.recvRaw(&raw); err != nil {
		return dst, err
	}
	body := raw.b
	if len(body) == 0 {
		return dst, fmt.Errorf("%w: empty bin frame", ErrMalformed)
	}
	var n, off int
	switch body[0] {
	case 0xc4:
		if len(body) < 2 {
			return dst, fmt.Errorf("%w: short bin8 header", ErrMalformed)
		}
		n, off = int(body[1]), 2
	case 0xc5:
		if len(body) < 3 {
			return dst, fmt.Errorf("%w: short bin16 header", ErrMalformed)
		}
		n, off = int(binary.BigEndian.Uint16(body[1:])), 3
	case 0xc6:
		if len(body) < 5 {
			return dst, fmt.Errorf("%w: short bin32 header", ErrMalformed)
		}
		n, off = int(binary.BigEndian.Uint32(body[1:])), 5
	default:
		return dst, fmt.Errorf("%w: frame is not a byte string", ErrMalformed)
	}
	if len(body)-off != n {
		return dst, fmt.Errorf("%w: bin length %d, frame holds %d", ErrMalformed, n, len(body)-off)
	}
	return append(dst, body[off:]...), nil
}

// rawBody receives a data frame's undecoded body (valid until the next Recv).
type rawBody struct{ b []byte }
