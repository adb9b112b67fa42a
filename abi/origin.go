package abi

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
)

// OriginDomain separates origin-hash derivation from every other use of
// SHA-256 over a public key.
const OriginDomain = "wasmesh/origin-hash/v1"

// EntityIDSize is the length of a daemon's entity id: its ed25519 public key.
const EntityIDSize = 32

// OriginHash derives a daemon's 64-bit address from its entity id:
//
//	origin = uint64_le( SHA-256( "wasmesh/origin-hash/v1" || 0x00 || entity_id )[0:8] )
//
// The domain string and the zero byte keep the value distinct from any other
// hash of the same key.
func OriginHash(entityID [EntityIDSize]byte) uint64 {
	h := sha256.New()
	h.Write([]byte(OriginDomain))
	h.Write([]byte{0})
	h.Write(entityID[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return binary.LittleEndian.Uint64(sum[:8])
}

// FormatOrigin renders an origin hash the way operators see it: 16 lowercase
// hex digits.
func FormatOrigin(origin uint64) string {
	return fmt.Sprintf("%016x", origin)
}

// ParseOrigin parses the 16-hex-digit form produced by FormatOrigin.
func ParseOrigin(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("daemon id %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("daemon id %q: not hex", s)
	}
	return v, nil
}
