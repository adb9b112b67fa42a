package engine

import (
	"crypto/ecdh"
	"fmt"
	"io"

	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/envelope"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// The daemon key never leaves the engine: callers that need it signed,
// sealed or stored go through these methods, each of which works on a
// private copy taken under d.mu and zeroes it before returning, so no
// copy outlives the call and d.mu is not held while the (possibly large)
// snapshot is hashed.

// withKey runs f with a private copy of the key, wiped afterwards. A wiped
// key (the daemon migrated away) is passed on as the zero identity: Encode
// and Seal refuse it with their own errors, which callers already match.
func (d *Daemon) withKey(f func(id identity.Identity) error) error {
	d.mu.Lock()
	id := d.id.Clone()
	d.mu.Unlock()
	defer id.Wipe()
	return f(id)
}

// SignSnapshot encodes s signed by the daemon key (the snapshot format of
// internal/snapshot).
func (d *Daemon) SignSnapshot(s *snapshot.Snapshot) ([]byte, error) {
	var data []byte
	err := d.withKey(func(id identity.Identity) error {
		var err error
		data, err = snapshot.Encode(s, id)
		return err
	})
	return data, err
}

// SealSeed seals the daemon's seed to a target node's static X25519 key
// for a migration (internal/migration/envelope). rand may be nil.
func (d *Daemon) SealSeed(rand io.Reader, target *ecdh.PublicKey, b envelope.Binding) ([]byte, error) {
	var env []byte
	err := d.withKey(func(id identity.Identity) error {
		var err error
		env, err = envelope.Seal(rand, id, target, b)
		return err
	})
	return env, err
}

// WithSeed calls f with a copy of the daemon's 32-byte seed, for the
// node's record at rest; the copy is zeroed when f returns, so f must not
// keep it.
func (d *Daemon) WithSeed(f func(seed []byte) error) error {
	return d.withKey(func(id identity.Identity) error {
		if id.IsZero() {
			return fmt.Errorf("%w: daemon %s holds no key", identity.ErrBadKeyFile, d.idText)
		}
		seed := id.Seed()
		defer clear(seed)
		return f(seed)
	})
}
