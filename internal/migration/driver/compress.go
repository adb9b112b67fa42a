package driver

import (
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Snapshots travel compressed: live memory is mostly repetitive (heaps,
// zeroed structures, padding), and on loopback or LAN links compressing at
// zstd's fastest level costs less time than the bytes it saves. The first
// byte says which: a receiver accepts both.
const (
	packRaw  byte = 0
	packZstd byte = 1
)

type packer struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
	max uint64
}

func newPacker() (*packer, error) {
	max := uint64(snapshot.MaxEncodedSize(snapshot.DefaultLimits()))
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	// The decoded size is bounded before any allocation, so a small
	// compressed frame cannot claim gigabytes.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(max), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, err
	}
	return &packer{enc: enc, dec: dec, max: max}, nil
}

func (p *packer) pack(b []byte) []byte {
	if !p.compressible(b) {
		return append([]byte{packRaw}, b...)
	}
	out := p.enc.EncodeAll(b, append(make([]byte, 0, len(b)/4+64), packZstd))
	if len(out) >= len(b)+1 {
		return append([]byte{packRaw}, b...)
	}
	return out
}

// compressible samples a large input before compressing it all: memory
// that does not compress (encrypted or already compressed data, random
// state) costs zstd about as much time as the link, for nothing. Sixteen
// evenly spread pieces that shrink by less than an eighth together say
// so; one empty piece among them does not make the rest worth it.
func (p *packer) compressible(b []byte) bool {
	const piece, pieces = 16 << 10, 16
	if len(b) < 4*pieces*piece {
		return true
	}
	step := len(b) / pieces
	sample := make([]byte, 0, pieces*piece)
	for i := range pieces {
		sample = append(sample, b[i*step:i*step+piece]...)
	}
	out := p.enc.EncodeAll(sample, make([]byte, 0, len(sample)))
	return len(out) < len(sample)-len(sample)/8
}

func (p *packer) unpack(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty snapshot", ErrBadFrame)
	}
	switch b[0] {
	case packRaw:
		return b[1:], nil
	case packZstd:
		out, err := p.dec.DecodeAll(b[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("%w: snapshot does not decompress: %v", ErrBadFrame, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown snapshot packing %d", ErrBadFrame, b[0])
}

func (p *packer) close() {
	p.enc.Close()
	p.dec.Close()
}
