package driver

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// A frame on the migration stream between two nodes is one byte of type
// followed by its body: a protocol message (internal/migration/wire), or an outputs
// report that carries the outputs of a replayed event back to the node where
// its sender is waiting.
const (
	frameMessage byte = 1
	frameOutputs byte = 2
)

// ErrBadFrame is a frame from a peer that does not decode.
var ErrBadFrame = errors.New("migrator: malformed frame")

func encodeMessage(m wire.Message) ([]byte, error) {
	b, err := wire.Encode(m)
	if err != nil {
		return nil, err
	}
	return append([]byte{frameMessage}, b...), nil
}

// report is the result of applying one replayed event on the target.
type report struct {
	ID      uint64 // migration id
	Seq     uint64 // the daemon's input sequence of the event
	Outputs []engine.Output
	Err     string
}

// encodeReport: id u64 | seq u64 | n u32 | n × (link 56 | len u32 | payload) | errlen u32 | err.
func encodeReport(r report) []byte {
	b := []byte{frameOutputs}
	b = binary.LittleEndian.AppendUint64(b, r.ID)
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Outputs)))
	for _, o := range r.Outputs {
		b = o.Link.AppendBinary(b)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(o.Payload)))
		b = append(b, o.Payload...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Err)))
	return append(b, r.Err...)
}

// decodeReport is strict: every length is checked against the bytes left,
// and nothing may trail.
func decodeReport(b []byte) (report, error) {
	var r report
	rd := reader{b: b}
	r.ID = rd.u64()
	r.Seq = rd.u64()
	n := rd.u32()
	if rd.err == nil && uint64(n)*(chain.LinkSize+4) > uint64(len(rd.b)) {
		return r, fmt.Errorf("%w: %d outputs in %d bytes", ErrBadFrame, n, len(rd.b))
	}
	for i := uint32(0); i < n && rd.err == nil; i++ {
		l, err := chain.DecodeLink(rd.take(chain.LinkSize))
		if err != nil && rd.err == nil {
			rd.err = err
		}
		// Copied: the frame buffer is reused for the next frame.
		p := append([]byte{}, rd.take(int(rd.u32()))...)
		r.Outputs = append(r.Outputs, engine.Output{Link: l, Payload: p})
	}
	r.Err = string(rd.take(int(rd.u32())))
	if rd.err == nil && len(rd.b) != 0 {
		rd.err = fmt.Errorf("%w: %d trailing bytes", ErrBadFrame, len(rd.b))
	}
	return r, rd.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: need %d bytes, have %d", ErrBadFrame, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
