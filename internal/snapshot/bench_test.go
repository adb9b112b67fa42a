package snapshot

import (
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
)

func benchSnapshot(b *testing.B, mib int) *Snapshot {
	id := testID(b, 1)
	s := baseSnapshot(id, Transparent)
	n := uint32(mib * (1 << 20) / PageSize)
	s.MemoryPages = n
	for i := range n {
		s.Pages = append(s.Pages, Page{Index: i, Data: fillPage(uint64(i) + 1)})
	}
	return s
}

var benchSizes = []int{1, 64}

// BenchmarkEncode: "full" is Encode as callers use it (fresh buffer);
// "reuse" appends into a reused buffer (no page faults); "layout" is the
// copy without hashing or signing, so full-layout is the crypto share;
// "stream" is EncodeTo into io.Discard (hashing only, no copy).
func BenchmarkEncode(b *testing.B) {
	for _, mib := range benchSizes {
		s := benchSnapshot(b, mib)
		id := testID(b, 1)
		b.Run(fmt.Sprintf("full/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			for b.Loop() {
				if _, err := Encode(s, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("reuse/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = AppendEncode(buf[:0], s, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("stream/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			for b.Loop() {
				if _, err := EncodeTo(io.Discard, s, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("layout/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			var buf []byte
			for b.Loop() {
				p, err := makePlan(s)
				if err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
				_ = p.each(func(piece []byte) error { buf = append(buf, piece...); return nil })
			}
		})
	}
}

// BenchmarkDecode: "full" verifies the signature; "nosig" is the same
// decode without it, so full-nosig is the verification share.
func BenchmarkDecode(b *testing.B) {
	for _, mib := range benchSizes {
		s := benchSnapshot(b, mib)
		enc, err := Encode(s, testID(b, 1))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("full/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			for b.Loop() {
				if _, err := Decode(enc, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("nosig/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(s.LiveBytes()))
			for b.Loop() {
				if _, err := decode(enc, DefaultLimits(), false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCrypto isolates the two crypto steps for the same sizes.
func BenchmarkCrypto(b *testing.B) {
	id := testID(b, 1)
	for _, mib := range benchSizes {
		buf := make([]byte, mib<<20)
		copy(buf, fillPage(1))
		b.Run(fmt.Sprintf("sha256/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				sha256.Sum256(buf)
			}
		})
	}
	msg := signedMessage(make([]byte, 32))
	b.Run("ed25519-sign", func(b *testing.B) {
		for b.Loop() {
			id.Sign(msg)
		}
	})
}

func BenchmarkPageHash(b *testing.B) {
	p := fillPage(1)
	b.SetBytes(PageSize)
	for b.Loop() {
		PageHash(p)
	}
}
