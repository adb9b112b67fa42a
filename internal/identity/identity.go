// Package identity holds a daemon's ed25519 keypair and the ids derived
// from it, and reads and writes key files.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/wasmesh/wasmesh/abi"
)

// ErrBadKeyFile is returned for a key file that is not a wasmesh identity.
var ErrBadKeyFile = errors.New("identity: bad key file")

// Identity is a daemon's ed25519 keypair.
type Identity struct {
	priv ed25519.PrivateKey
}

// Generate creates a fresh identity from crypto/rand.
func Generate() (Identity, error) { return GenerateFrom(rand.Reader) }

// GenerateFrom creates an identity from the given entropy source.
func GenerateFrom(r io.Reader) (Identity, error) {
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: generate: %w", err)
	}
	return Identity{priv: priv}, nil
}

// FromSeed builds an identity from a 32-byte ed25519 seed.
func FromSeed(seed []byte) (Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return Identity{}, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadKeyFile, len(seed), ed25519.SeedSize)
	}
	return Identity{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// IsZero reports whether the identity holds no key.
func (id Identity) IsZero() bool { return len(id.priv) == 0 }

// Seed returns a copy of the 32-byte seed: the only one, for the caller to
// clear (ed25519's own Seed would leave a second, unreachable copy).
func (id Identity) Seed() []byte {
	if id.IsZero() {
		return nil
	}
	return append([]byte(nil), id.priv[:ed25519.SeedSize]...)
}

// Public returns the public key.
func (id Identity) Public() ed25519.PublicKey { return id.priv.Public().(ed25519.PublicKey) }

// EntityID is the 32-byte public key.
func (id Identity) EntityID() [abi.EntityIDSize]byte {
	var e [abi.EntityIDSize]byte
	copy(e[:], id.priv[32:])
	return e
}

// Origin is the daemon's 64-bit address (abi.OriginHash of the entity id).
func (id Identity) Origin() uint64 { return abi.OriginHash(id.EntityID()) }

// Sign signs msg with the daemon key.
func (id Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// Clone returns an identity with its own copy of the key, so wiping one
// does not zero the other under a concurrent reader.
func (id Identity) Clone() Identity {
	return Identity{priv: append(ed25519.PrivateKey(nil), id.priv...)}
}

// Wipe zeroes the private key in place; the identity is unusable afterwards.
func (id *Identity) Wipe() {
	for i := range id.priv {
		id.priv[i] = 0
	}
	id.priv = nil
}

// Verify checks sig over msg against an entity id.
func Verify(entity [abi.EntityIDSize]byte, msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(ed25519.PublicKey(entity[:]), msg, sig)
}

const keyFileHeader = "wasmesh-ed25519-seed-v1\n"

// Save writes the seed to path with mode 0600, refusing to overwrite.
func (id Identity) Save(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("identity: save %s: %w", path, err)
	}
	data := append([]byte(keyFileHeader), fmt.Sprintf("%x\n", id.priv.Seed())...)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("identity: save %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("identity: save %s: %w", path, err)
	}
	return nil
}

// Load reads a key file written by Save.
func Load(path string) (Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: load %s: %w", path, err)
	}
	return Parse(data)
}

// Parse decodes the key file format.
func Parse(data []byte) (Identity, error) {
	if len(data) > 256 || len(data) < len(keyFileHeader) || string(data[:len(keyFileHeader)]) != keyFileHeader {
		return Identity{}, fmt.Errorf("%w: missing %q header", ErrBadKeyFile, keyFileHeader[:len(keyFileHeader)-1])
	}
	var seed []byte
	rest := string(data[len(keyFileHeader):])
	if _, err := fmt.Sscanf(rest, "%x\n", &seed); err != nil || len(seed) != ed25519.SeedSize {
		return Identity{}, fmt.Errorf("%w: want a 64-hex-digit seed", ErrBadKeyFile)
	}
	return FromSeed(seed)
}

// LoadOrCreate loads path, or creates a fresh identity there (mode 0600) if
// the file does not exist. created reports which happened.
func LoadOrCreate(path string) (id Identity, created bool, err error) {
	id, err = Load(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, err
	}
	id, err = Generate()
	if err != nil {
		return Identity{}, false, err
	}
	if err := id.Save(path); err != nil {
		return Identity{}, false, err
	}
	return id, true, nil
}
