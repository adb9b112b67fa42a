package snapshot

import (
	"encoding/binary"
	"math/bits"
)

// PageHash is XXH64 (seed 0) of a page. Delta snapshots compare it with the
// hash of the last shipped copy to decide whether a page must travel.
//
// Why XXH64 and not CRC-32C: a 32-bit hash misses one changed page in 2^32,
// and a CRC is linear, so a guest can change its memory without changing
// the CRC at will; XXH64 is 64-bit and non-linear. The result is bit-for-bit
// that of github.com/cespare/xxhash/v2 Sum64, so switching to that package
// (assembly, ~1.5x faster) later changes no stored hash. It is not a
// cryptographic commitment: the snapshot signature is.
func PageHash(data []byte) uint64 { return xxh64(data) }

// PageHashes hashes every stored page of s, by page index.
func PageHashes(s *Snapshot) map[uint32]uint64 {
	m := make(map[uint32]uint64, len(s.Pages))
	for _, p := range s.Pages {
		m[p.Index] = xxh64(p.Data)
	}
	return m
}

// XXH64 primes, from the specification.
const (
	xxPrime1 uint64 = 0x9E3779B185EBCA87
	xxPrime2 uint64 = 0xC2B2AE3D27D4EB4F
	xxPrime3 uint64 = 0x165667B19E3779F9
	xxPrime4 uint64 = 0x85EBCA77C2B2AE63
	xxPrime5 uint64 = 0x27D4EB2F165667C5
)

func xxRound(acc, input uint64) uint64 {
	acc += input * xxPrime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * xxPrime1
}

func xxMerge(acc, val uint64) uint64 {
	acc ^= xxRound(0, val)
	return acc*xxPrime1 + xxPrime4
}

// xxh64 is XXH64 with seed 0.
func xxh64(b []byte) uint64 {
	le := binary.LittleEndian
	n := uint64(len(b))
	var h uint64
	if len(b) >= 32 {
		// Seed-0 lane initialisers; written as expressions on variables
		// because prime1+prime2 overflows as a constant.
		p1, p2 := xxPrime1, xxPrime2
		v1, v2, v3, v4 := p1+p2, p2, uint64(0), -p1
		for len(b) >= 32 {
			v1 = xxRound(v1, le.Uint64(b[0:8]))
			v2 = xxRound(v2, le.Uint64(b[8:16]))
			v3 = xxRound(v3, le.Uint64(b[16:24]))
			v4 = xxRound(v4, le.Uint64(b[24:32]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = xxPrime5
	}
	h += n
	for ; len(b) >= 8; b = b[8:] {
		h ^= xxRound(0, le.Uint64(b))
		h = bits.RotateLeft64(h, 27)*xxPrime1 + xxPrime4
	}
	if len(b) >= 4 {
		h ^= uint64(le.Uint32(b)) * xxPrime1
		h = bits.RotateLeft64(h, 23)*xxPrime2 + xxPrime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * xxPrime5
		h = bits.RotateLeft64(h, 11) * xxPrime1
	}
	h ^= h >> 33
	h *= xxPrime2
	h ^= h >> 29
	h *= xxPrime3
	h ^= h >> 32
	return h
}
