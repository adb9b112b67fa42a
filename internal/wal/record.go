package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On disk a segment is a header followed by frames:
//
//	frame = u32 body length | u32 CRC-32C of body | body      (little endian)
//	body  = u8 kind | u64 origin | u64 incarnation | u64 input seq | rest
//	rest  = (kindBegin)  nothing
//	        (kindEvent)  u64 sender | u64 sender seq | uvarint n | payload[n] | uvarint m | readings[m]
//
// The input seq of a Begin is where the history starts; of an Event, the
// daemon's input sequence after it.

const (
	segmentMagic = "WMSHWAL1"
	frameHeader  = 8
	bodyFixed    = 1 + 8 + 8 + 8

	kindBegin byte = 1
	kindEvent byte = 2
)

// MaxRecordBytes bounds one record's body, so a corrupt length is caught
// before it is trusted. The reader never allocates by a length (segments
// are read whole and frames sliced from them); the bound is there for the
// writer's sake too: no event's payload plus readings come near it (the
// host caps inputs, and the sandbox caps what one event may read).
const MaxRecordBytes = 1 << 30

// ErrCorrupt: a segment holds a frame that does not decode.
var ErrCorrupt = errors.New("wal: corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one decoded journal record.
type Record struct {
	Kind        byte
	Origin      uint64
	Incarnation uint64
	InputSeq    uint64
	Sender      uint64
	SenderSeq   uint64
	Payload     []byte
	Readings    []byte
}

// appendFrame encodes r as a frame onto b.
func appendFrame(b []byte, r *Record) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = append(b, r.Kind)
	b = binary.LittleEndian.AppendUint64(b, r.Origin)
	b = binary.LittleEndian.AppendUint64(b, r.Incarnation)
	b = binary.LittleEndian.AppendUint64(b, r.InputSeq)
	if r.Kind == kindEvent {
		b = binary.LittleEndian.AppendUint64(b, r.Sender)
		b = binary.LittleEndian.AppendUint64(b, r.SenderSeq)
		b = binary.AppendUvarint(b, uint64(len(r.Payload)))
		b = append(b, r.Payload...)
		b = binary.AppendUvarint(b, uint64(len(r.Readings)))
		b = append(b, r.Readings...)
	}
	body := b[start+frameHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// decodeBody decodes a frame body whose checksum already matched. The
// returned record's slices alias body.
func decodeBody(body []byte) (Record, error) {
	var r Record
	if len(body) < bodyFixed {
		return r, fmt.Errorf("%w: body of %d bytes", ErrCorrupt, len(body))
	}
	r.Kind = body[0]
	r.Origin = binary.LittleEndian.Uint64(body[1:])
	r.Incarnation = binary.LittleEndian.Uint64(body[9:])
	r.InputSeq = binary.LittleEndian.Uint64(body[17:])
	rest := body[bodyFixed:]
	switch r.Kind {
	case kindBegin:
		if len(rest) != 0 {
			return r, fmt.Errorf("%w: %d trailing bytes after a begin record", ErrCorrupt, len(rest))
		}
		return r, nil
	case kindEvent:
	default:
		return r, fmt.Errorf("%w: unknown record kind %d", ErrCorrupt, r.Kind)
	}
	if len(rest) < 16 {
		return r, fmt.Errorf("%w: short event record", ErrCorrupt)
	}
	r.Sender = binary.LittleEndian.Uint64(rest)
	r.SenderSeq = binary.LittleEndian.Uint64(rest[8:])
	rest = rest[16:]
	var err error
	if r.Payload, rest, err = lengthPrefixed(rest); err != nil {
		return r, fmt.Errorf("%w: payload: %w", ErrCorrupt, err)
	}
	if r.Readings, rest, err = lengthPrefixed(rest); err != nil {
		return r, fmt.Errorf("%w: readings: %w", ErrCorrupt, err)
	}
	if len(rest) != 0 {
		return r, fmt.Errorf("%w: %d trailing bytes after an event record", ErrCorrupt, len(rest))
	}
	return r, nil
}

func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errors.New("bad length")
	}
	// The shortest encoding only: one record has one byte form.
	if k != len(binary.AppendUvarint(nil, n)) {
		return nil, nil, errors.New("overlong length")
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d past the record's end", n)
	}
	return b[:n:n], b[n:], nil
}

// nextFrame splits the first frame off b. ok is false when b holds no
// complete, intact frame (a torn tail or corruption): err says which.
func nextFrame(b []byte) (body, rest []byte, err error) {
	if len(b) < frameHeader {
		return nil, b, errTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxRecordBytes {
		return nil, b, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrCorrupt, n, MaxRecordBytes)
	}
	if uint64(len(b)-frameHeader) < uint64(n) {
		return nil, b, errTorn
	}
	body = b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, b, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return body, b[frameHeader+int(n):], nil
}

// errTorn marks a frame cut short by a crash mid-write.
var errTorn = errors.New("wal: torn frame")
