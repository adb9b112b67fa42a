// Package envelope seals a daemon's ed25519 seed to a migration target node
// (SPEC R-M5) so that only that node can recover it, only for that migration
// and only on top of that chain head.
//
// Seal: ephemeral X25519 key → ECDH with the target's static X25519 key →
// HKDF-SHA256 (info binds migration id, origin, target node id, chain head
// and entity id) → AES-256-GCM over the seed, with the envelope header as
// additional data → ed25519 signature by the daemon key over everything.
//
// Open checks in a fixed order, cheapest and least secret first: parse →
// signature against the expected entity id → binding → ECDH → decrypt →
// the recovered seed's public key equals the entity id. Every failure is
// terminal for the migration; none of them is retriable.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// Errors; every error from Seal and Open matches ErrEnvelope and one of the
// specific ones.
var (
	ErrEnvelope    = errors.New("identity envelope")
	ErrMissingKey  = errors.New("missing key: cannot seal without the target's static key and the daemon key")
	ErrMalformed   = errors.New("malformed")
	ErrSignature   = errors.New("signature does not verify against the expected entity id")
	ErrBinding     = errors.New("bound to a different migration, origin, target or chain head")
	ErrDecrypt     = errors.New("decryption failed")
	ErrKeyMismatch = errors.New("sealed seed does not belong to the entity id")
)

func fail(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrEnvelope, kind}, args...)...)
}

// Binding is what an envelope is valid for.
type Binding struct {
	MigrationID uint64
	Origin      uint64 // daemon origin hash
	Target      string // target node id
	// ChainHead is the daemon's head hash (chain.Hash of the head link and
	// its payload; snapshot.HeadHash): the parent its next output carries.
	ChainHead [32]byte
}

// Expect is what the opener requires of an envelope.
type Expect struct {
	EntityID [abi.EntityIDSize]byte
	Binding
}

const (
	magic      = "WMIE"
	version    = 1
	domain     = "wasmesh/identity-envelope/v1"
	maxTarget  = 256
	seedSize   = ed25519.SeedSize
	ctSize     = seedSize + 16 // GCM tag
	keySize    = 32
	nonceSize  = 12
	pubKeySize = 32
)

// MaxSize is the largest envelope Seal produces.
const MaxSize = 4 + 1 + 8 + 8 + 32 + 2 + maxTarget + abi.EntityIDSize + pubKeySize + ctSize + ed25519.SignatureSize

// Seal seals id's seed to the target node's static X25519 key. A nil key or a
// zero identity is ErrMissingKey: a requested seal never downgrades to none.
// rand may be nil; crypto/ecdh then uses the system source (recent Go
// releases ignore a caller-supplied source for key generation anyway).
func Seal(rand io.Reader, id identity.Identity, targetStatic *ecdh.PublicKey, b Binding) ([]byte, error) {
	if id.IsZero() || targetStatic == nil || targetStatic.Curve() != ecdh.X25519() {
		return nil, fail(ErrMissingKey, "daemon key present=%v, target key present=%v", !id.IsZero(), targetStatic != nil)
	}
	if id.Origin() != b.Origin {
		return nil, fail(ErrBinding, "origin %016x is not the daemon's %016x", b.Origin, id.Origin())
	}
	seed := id.Seed()
	defer clear(seed)
	return seal(rand, id, seed, targetStatic, b)
}

// seal is Seal with the sealed seed separate from the signer, so tests can
// build a correctly signed envelope around the wrong seed.
func seal(rand io.Reader, signer identity.Identity, seed []byte, targetStatic *ecdh.PublicKey, b Binding) ([]byte, error) {
	if len(b.Target) == 0 || len(b.Target) > maxTarget {
		return nil, fail(ErrMalformed, "target node id of %d bytes", len(b.Target))
	}
	eph, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrEnvelope, err)
	}
	shared, err := eph.ECDH(targetStatic)
	if err != nil {
		return nil, fail(ErrMissingKey, "ecdh: %v", err)
	}
	defer clear(shared)
	p := parsed{binding: b, entity: signer.EntityID()}
	copy(p.ephemeral[:], eph.PublicKey().Bytes())
	aead, nonce, err := deriveAEAD(shared, p, targetStatic.Bytes())
	if err != nil {
		return nil, err
	}
	out := p.appendHeader(nil)
	out = aead.Seal(out, nonce, seed, out)
	return append(out, signer.Sign(signedMessage(out))...), nil
}

// Open recovers the daemon identity from env with the target node's static
// private key, checking everything want says.
func Open(env []byte, targetStatic *ecdh.PrivateKey, want Expect) (identity.Identity, error) {
	if targetStatic == nil || targetStatic.Curve() != ecdh.X25519() {
		return identity.Identity{}, fail(ErrMissingKey, "no target static key to open with")
	}
	p, err := parse(env)
	if err != nil {
		return identity.Identity{}, err
	}
	signed, sig := env[:len(env)-ed25519.SignatureSize], env[len(env)-ed25519.SignatureSize:]
	if p.entity != want.EntityID || !identity.Verify(want.EntityID, signedMessage(signed), sig) {
		return identity.Identity{}, fail(ErrSignature, "entity %x", want.EntityID[:4])
	}
	if p.binding != want.Binding || abi.OriginHash(want.EntityID) != want.Origin {
		return identity.Identity{}, fail(ErrBinding, "envelope for migration %d origin %016x target %q", p.binding.MigrationID, p.binding.Origin, p.binding.Target)
	}
	ephPub, err := ecdh.X25519().NewPublicKey(p.ephemeral[:])
	if err != nil {
		return identity.Identity{}, fail(ErrMalformed, "ephemeral key: %v", err)
	}
	shared, err := targetStatic.ECDH(ephPub)
	if err != nil {
		return identity.Identity{}, fail(ErrDecrypt, "ecdh: %v", err)
	}
	defer clear(shared)
	aead, nonce, err := deriveAEAD(shared, p, targetStatic.PublicKey().Bytes())
	if err != nil {
		return identity.Identity{}, err
	}
	headerLen := len(signed) - ctSize
	seed, err := aead.Open(nil, nonce, signed[headerLen:], signed[:headerLen])
	if err != nil {
		return identity.Identity{}, fail(ErrDecrypt, "%v", err)
	}
	defer clear(seed)
	id, err := identity.FromSeed(seed)
	if err != nil {
		return identity.Identity{}, fail(ErrKeyMismatch, "%v", err)
	}
	got := id.EntityID()
	if subtle.ConstantTimeCompare(got[:], want.EntityID[:]) != 1 {
		id.Wipe()
		return identity.Identity{}, fail(ErrKeyMismatch, "seed is for %x", got[:4])
	}
	return id, nil
}

func signedMessage(body []byte) []byte {
	return append(append([]byte(domain), 0), body...)
}

// deriveAEAD: the salt carries both public keys so the key is bound to this
// exact ECDH exchange; info carries the binding and entity so a key derived
// for one migration cannot decrypt another's envelope.
func deriveAEAD(shared []byte, p parsed, targetPub []byte) (cipher.AEAD, []byte, error) {
	salt := append(append([]byte{}, p.ephemeral[:]...), targetPub...)
	info := p.appendHeader([]byte(domain + "/hkdf\x00"))
	okm, err := hkdf.Key(sha256.New, shared, salt, string(info), keySize+nonceSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: hkdf: %w", ErrEnvelope, err)
	}
	block, err := aes.NewCipher(okm[:keySize])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: aes: %w", ErrEnvelope, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: gcm: %w", ErrEnvelope, err)
	}
	// The key is single-use (fresh ephemeral per envelope), so a nonce
	// derived alongside it is safe.
	return aead, okm[keySize:], nil
}

// parsed is the envelope header.
type parsed struct {
	binding   Binding
	entity    [abi.EntityIDSize]byte
	ephemeral [pubKeySize]byte
}

func (p parsed) appendHeader(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, version)
	b = binary.LittleEndian.AppendUint64(b, p.binding.MigrationID)
	b = binary.LittleEndian.AppendUint64(b, p.binding.Origin)
	b = append(b, p.binding.ChainHead[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(p.binding.Target)))
	b = append(b, p.binding.Target...)
	b = append(b, p.entity[:]...)
	return append(b, p.ephemeral[:]...)
}

// parse reads the header and checks the total length; it trusts nothing.
func parse(env []byte) (parsed, error) {
	var p parsed
	const fixed = 4 + 1 + 8 + 8 + 32 + 2
	if len(env) < fixed || len(env) > MaxSize {
		return p, fail(ErrMalformed, "%d bytes", len(env))
	}
	if string(env[:4]) != magic || env[4] != version {
		return p, fail(ErrMalformed, "bad magic or version")
	}
	p.binding.MigrationID = binary.LittleEndian.Uint64(env[5:13])
	p.binding.Origin = binary.LittleEndian.Uint64(env[13:21])
	copy(p.binding.ChainHead[:], env[21:53])
	tl := int(binary.LittleEndian.Uint16(env[53:55]))
	if tl == 0 || tl > maxTarget {
		return p, fail(ErrMalformed, "target id of %d bytes", tl)
	}
	want := fixed + tl + abi.EntityIDSize + pubKeySize + ctSize + ed25519.SignatureSize
	if len(env) != want {
		return p, fail(ErrMalformed, "%d bytes, want %d", len(env), want)
	}
	rest := env[fixed:]
	p.binding.Target = string(rest[:tl])
	rest = rest[tl:]
	copy(p.entity[:], rest[:abi.EntityIDSize])
	copy(p.ephemeral[:], rest[abi.EntityIDSize:abi.EntityIDSize+pubKeySize])
	return p, nil
}
