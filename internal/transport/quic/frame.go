package meshquic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// Frame layout on a stream:
//
//	uint32 big-endian length n | n bytes: kind (1 byte) | msgpack body
//
// A fixed 4-byte prefix (rather than a uvarint) lets a reader fetch the
// header with one read and decide on the size before allocating anything.
const frameHeaderSize = 4

// DefaultMaxFrame bounds one frame; larger payloads are streamed in chunks.
const DefaultMaxFrame = 16 << 20

// Frame kinds. Every stream starts with one kindHeader frame from the
// opener; after that either side sends kindData or kindError frames.
const (
	kindHeader byte = 1
	kindData   byte = 2
	kindError  byte = 3
)

// header opens every stream.
type header struct {
	Subprotocol string `msgpack:"s"`
	RequestID   uint64 `msgpack:"r,omitempty"`
}

// ReadFrame reads one frame from r. It reuses buf when it is large enough and
// returns the frame (kind byte and body). A stream that ends cleanly before a
// frame starts yields io.EOF; one that ends inside a frame yields
// ErrTruncatedFrame; a length above max yields ErrFrameTooLarge before any
// of the body is read or allocated.
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: inside length prefix", ErrTruncatedFrame)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: want %d bytes", ErrTruncatedFrame, n)
		}
		return nil, err
	}
	return buf, nil
}

// appendWriter lets msgpack encode straight into a frame buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// AppendFrame appends one frame of the given kind whose body is v encoded
// with msgpack, and refuses a frame larger than max.
func appendFrame(dst []byte, kind byte, v any, max int) ([]byte, error) {
	start := len(dst)
	w := appendWriter{b: append(dst, 0, 0, 0, 0, kind)}
	enc := msgpack.GetEncoder()
	enc.Reset(&w)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return dst, fmt.Errorf("%w: encode: %v", ErrMalformed, err)
	}
	n := len(w.b) - start - frameHeaderSize
	if n > max {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	binary.BigEndian.PutUint32(w.b[start:], uint32(n))
	return w.b, nil
}

// splitFrame separates a frame into kind and body.
func splitFrame(frame []byte) (byte, []byte, error) {
	if len(frame) == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	switch k := frame[0]; k {
	case kindHeader, kindData, kindError:
		return k, frame[1:], nil
	default:
		return 0, nil, fmt.Errorf("%w: unknown frame kind %d", ErrMalformed, k)
	}
}

// decodeBody decodes exactly one msgpack value from body into v; trailing
// bytes mean the peer and we disagree about the message, which is an error
// rather than something to skip.
func decodeBody(body []byte, v any) error {
	if err := checkMsgpack(body); err != nil {
		return err
	}
	rd := bytes.NewReader(body)
	// A fresh decoder each time, not msgpack's pool: a decoder keeps its
	// scratch buffer, and a declared length beyond the input grows that
	// buffer by 1 MiB before failing, so pooled decoders let a peer ratchet
	// memory (and copying time) up without bound across frames.
	err := msgpack.NewDecoder(rd).Decode(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, rd.Len())
	}
	return nil
}
