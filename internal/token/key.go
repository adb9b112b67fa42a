package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
)

// KeyPrefix starts the text form of a private key file.
const KeyPrefix = "wasmesh-key-v1:"

// MarshalKey returns the text form of key: KeyPrefix and its 32-byte seed
// in unpadded base64url, with a final newline.
func MarshalKey(key ed25519.PrivateKey) []byte {
	return []byte(KeyPrefix + base64.RawURLEncoding.EncodeToString(key.Seed()) + "\n")
}

// ParseKey reads what MarshalKey wrote.
func ParseKey(text []byte) (ed25519.PrivateKey, error) {
	s := bytes.TrimSpace(text)
	rest, ok := bytes.CutPrefix(s, []byte(KeyPrefix))
	if !ok {
		return nil, fmt.Errorf("%w: key file does not start with %q", ErrMalformed, KeyPrefix)
	}
	seed, err := base64.RawURLEncoding.Strict().DecodeString(string(rest))
	if err != nil {
		return nil, fmt.Errorf("%w: key base64url: %v", ErrMalformed, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: key seed is %d bytes, want %d", ErrMalformed, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
