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

// PayloadHash commits to one output payload. Parent hashes are taken over
// the link and this hash rather than the raw payload, so that a snapshot needs
// only 32 bytes of the head payload to let the next parent verify after a
// restore (SPEC R-S1).
func PayloadHash(payload []byte) [32]byte { return sha256.Sum256(payload) }

// Next returns the link that follows head whose payload hashes to headPayloadHash.
func Next(head Link, headPayloadHash [32]byte, horizon uint64) Link {
	return Link{
		Origin:   head.Origin,
		Sequence: head.Sequence + 1,
		Parent:   ParentOf(head, headPayloadHash),
		Horizon:  horizon,
	}
}

// ParentOf is the parent hash of the link after l:
//
//	SHA-256( link_bytes(l) || SHA-256(payload of l) )
func ParentOf(l Link, payloadHash [32]byte) [32]byte {
	var buf [LinkSize + 32]byte
	b := l.AppendBinary(buf[:0])
	b = append(b, payloadHash[:]...)
	return sha256.Sum256(b)
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
	head            Link
	headPayloadHash [32]byte
}

// NewValidator starts validating right after head, whose payload hashed to
// headPayloadHash (use Genesis and PayloadHash(nil) for a fresh daemon).
func NewValidator(head Link, headPayloadHash [32]byte) *Validator {
	return &Validator{head: head, headPayloadHash: headPayloadHash}
}

// Head returns the last accepted link and its payload hash.
func (v *Validator) Head() (Link, [32]byte) { return v.head, v.headPayloadHash }

// Accept verifies that l with payload follows the current head and advances.
func (v *Validator) Accept(l Link, payload []byte) error {
	if l.Origin != v.head.Origin {
		return fmt.Errorf("%w: link origin %016x, chain origin %016x", ErrOriginMismatch, l.Origin, v.head.Origin)
	}
	if l.Sequence != v.head.Sequence+1 {
		return fmt.Errorf("%w: got sequence %d after %d", ErrSequenceGap, l.Sequence, v.head.Sequence)
	}
	if want := ParentOf(v.head, v.headPayloadHash); l.Parent != want {
		return fmt.Errorf("%w at sequence %d", ErrParentMismatch, l.Sequence)
	}
	v.head = l
	v.headPayloadHash = PayloadHash(payload)
	return nil
}
