// Package chain is a daemon's causal hash chain (SPEC R-D4): every output
// payload is wrapped in a Link whose parent hash commits to the previous link
// and its payload, so anyone holding the outputs in order can verify that
// none was dropped, reordered or altered.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// LinkSize is the length of a link's canonical encoding.
const LinkSize = 8 + 8 + 32 + 8

// Link is the causal header of one output.
type Link struct {
	// Origin is the emitting daemon's origin hash.
	Origin uint64
	// Sequence is 0 for the genesis link and +1 for every output.
	Sequence uint64
	// Parent is H(previous link bytes || previous payload); zero at genesis.
	Parent [32]byte
	// Horizon is the digest of the daemon's horizon (see Horizon.Digest)
	// when the output was produced.
	Horizon uint64
}

// Genesis is the virtual head of a fresh daemon's chain.
func Genesis(origin uint64) Link { return Link{Origin: origin} }

// AppendBinary appends the canonical little-endian encoding of l.
func (l Link) AppendBinary(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, l.Origin)
	b = binary.LittleEndian.AppendUint64(b, l.Sequence)
	b = append(b, l.Parent[:]...)
	return binary.LittleEndian.AppendUint64(b, l.Horizon)
}

// DecodeLink decodes the canonical encoding; it requires exactly LinkSize bytes.
func DecodeLink(b []byte) (Link, error) {
	if len(b) != LinkSize {
		return Link{}, fmt.Errorf("%w: link is %d bytes, want %d", ErrMalformed, len(b), LinkSize)
	}
	var l Link
	l.Origin = binary.LittleEndian.Uint64(b[0:8])
	l.Sequence = binary.LittleEndian.Uint64(b[8:16])
	copy(l.Parent[:], b[16:48])
	l.Horizon = binary.LittleEndian.Uint64(b[48:56])
	return l, nil
}

// Hash is the parent hash of the link that follows l:
//
//	SHA-256( link_bytes(l) || payload of l )
//
// A daemon keeps Hash(head, head payload) as its "head hash", so a snapshot
// carries 32 bytes rather than the head payload and the next parent still
// verifies after a restore (SPEC R-S1).
func Hash(l Link, payload []byte) [32]byte {
	if len(payload) <= smallPayload {
		var buf [LinkSize + smallPayload]byte
		b := append(l.AppendBinary(buf[:0]), payload...)
		return sha256.Sum256(b)
	}
	var out [32]byte
	h := sha256.New()
	var lb [LinkSize]byte
	h.Write(l.AppendBinary(lb[:0]))
	h.Write(payload)
	h.Sum(out[:0])
	return out
}

// smallPayload is the size up to which Hash works on the stack.
const smallPayload = 200

// Hasher hashes links without allocating for payloads of any size; a daemon
// keeps one.
type Hasher struct {
	h   hash.Hash
	buf [LinkSize]byte
}

// Hash is chain.Hash.
func (x *Hasher) Hash(l Link, payload []byte) [32]byte {
	if len(payload) <= smallPayload {
		return Hash(l, payload)
	}
	if x.h == nil {
		x.h = sha256.New()
	}
	x.h.Reset()
	x.h.Write(l.AppendBinary(x.buf[:0]))
	x.h.Write(payload)
	var out [32]byte
	x.h.Sum(out[:0])
	return out
}

// GenesisHash is the head hash of a fresh daemon.
func GenesisHash(origin uint64) [32]byte { return Hash(Genesis(origin), nil) }

// PayloadHash is SHA-256 of a payload, for callers that fingerprint outputs.
func PayloadHash(payload []byte) [32]byte { return sha256.Sum256(payload) }

// Next returns the link that follows a head whose head hash is headHash.
func Next(head Link, headHash [32]byte, horizon uint64) Link {
	return Link{Origin: head.Origin, Sequence: head.Sequence + 1, Parent: headHash, Horizon: horizon}
}

// Errors returned by the validator; test with errors.Is.
var (
	ErrMalformed      = errors.New("chain: malformed link")
	ErrOriginMismatch = errors.New("chain: origin mismatch")
	ErrSequenceGap    = errors.New("chain: sequence gap")
	ErrParentMismatch = errors.New("chain: parent hash mismatch")
)

// Validator checks a stream of outputs from one daemon.
type Validator struct {
	head     Link
	headHash [32]byte
	hasher   Hasher
}

// NewValidator starts validating right after head, whose head hash is
// headHash (Genesis(origin) and GenesisHash(origin) for a fresh daemon).
func NewValidator(head Link, headHash [32]byte) *Validator {
	return &Validator{head: head, headHash: headHash}
}

// NewGenesisValidator validates a daemon's outputs from its first one.
func NewGenesisValidator(origin uint64) *Validator {
	return NewValidator(Genesis(origin), GenesisHash(origin))
}

// Head returns the last accepted link and its head hash.
func (v *Validator) Head() (Link, [32]byte) { return v.head, v.headHash }

// Accept verifies that l with payload follows the current head and advances.
func (v *Validator) Accept(l Link, payload []byte) error {
	if l.Origin != v.head.Origin {
		return fmt.Errorf("%w: link origin %016x, chain origin %016x", ErrOriginMismatch, l.Origin, v.head.Origin)
	}
	if l.Sequence != v.head.Sequence+1 {
		return fmt.Errorf("%w: got sequence %d after %d", ErrSequenceGap, l.Sequence, v.head.Sequence)
	}
	if l.Parent != v.headHash {
		return fmt.Errorf("%w at sequence %d", ErrParentMismatch, l.Sequence)
	}
	v.head = l
	v.headHash = v.hasher.Hash(l, payload)
	return nil
}
