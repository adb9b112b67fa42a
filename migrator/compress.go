package migrator

import (
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/wasmesh/wasmesh/host/snapshot"
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
	out := p.enc.EncodeAll(b, append(make([]byte, 0, len(b)/4+64), packZstd))
	if len(out) >= len(b)+1 {
		return append([]byte{packRaw}, b...)
	}
	return out
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
