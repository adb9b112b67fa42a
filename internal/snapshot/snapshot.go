// Package snapshot is the byte format of a daemon snapshot (SPEC R-S1..R-S4):
// everything needed to continue a daemon elsewhere, versioned, signed by the
// daemon key and strictly decoded.
package snapshot

import (
	"errors"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
)

// PageSize is the wasm page size; memory travels as whole pages so that a
// later delta snapshot can ship only the pages whose hash changed.
const PageSize = 65536

// Mode says how the guest state was captured.
type Mode uint8

const (
	// Transparent: linear memory pages plus every mutable global.
	Transparent Mode = 1
	// Cooperative: the bytes the guest wrote with state_write.
	Cooperative Mode = 2
)

func (m Mode) String() string {
	switch m {
	case Transparent:
		return "transparent"
	case Cooperative:
		return "cooperative"
	}
	return "unknown"
}

// Page is one non-zero 64 KiB page of linear memory.
type Page struct {
	Index uint32 // page number: byte offset / PageSize
	Data  []byte // exactly PageSize bytes
}

// Global is the value of one mutable global, by its index in the module's
// global index space (imported globals first, as in the wasm spec).
type Global struct {
	Index uint32
	Type  abi.ValType // i32, i64, f32 or f64
	Bits  uint64      // the raw bits, as wazero's api.Global.Get returns them
}

// Subscription is one entry of the daemon's channel subscription ledger.
// Channels arrive in a later round; the ledger travels already so that a
// snapshot taken now restores then.
type Subscription struct {
	Publisher string // node id of the publisher
	Channel   string
	Token     []byte // optional permission token, opaque here
}

// Snapshot is a decoded snapshot.
type Snapshot struct {
	ModuleDigest [32]byte // sha256 of the original module bytes
	EntityID     [abi.EntityIDSize]byte
	// Sequence of this snapshot for this daemon; strictly increasing.
	Sequence uint64
	Mode     Mode

	ChainHead chain.Link // last link emitted (chain.Genesis when none)
	HeadHash  [32]byte   // chain.Hash(ChainHead, head payload): the next link's parent

	// Horizon: per sender origin, the highest sender sequence delivered.
	// These are the per-sender input watermarks.
	Horizon map[uint64]uint64
	// InputSeq counts events applied to the daemon; migration deduplicates
	// replayed events by it (SPEC R-M4).
	InputSeq uint64

	Ledger []Subscription

	// Transparent state.
	MemoryPages uint32 // memory size in pages at capture
	Pages       []Page // non-zero pages, strictly increasing Index < MemoryPages
	Globals     []Global

	// Cooperative state.
	State []byte

	// Envelope optionally carries the daemon seed sealed to a target node.
	Envelope []byte

	// Annotations, when set, travel in a version 2 snapshot: name, kind
	// name, counters and recent log lines. Nil encodes as version 1.
	Annotations *Annotations

	// Outbox, when set, travels in a version 3 snapshot: the daemon's
	// undelivered messages and outbound sequence. Nil encodes as version 1
	// or 2, as before.
	Outbox *Outbox

	// Signature is the daemon's ed25519 signature; set by Encode, checked
	// by Decode against EntityID.
	Signature []byte
}

// Errors returned by this package; test with errors.Is. Decode errors that
// come from a field-consistency check match both ErrMalformed and ErrInvalid.
var (
	// ErrMalformed: the bytes are not a well-formed snapshot (bad magic,
	// truncation, trailing bytes, inconsistent counts or fields).
	ErrMalformed = errors.New("snapshot: malformed")
	// ErrUnsupportedVersion: the magic matches but the version is unknown.
	ErrUnsupportedVersion = errors.New("snapshot: unsupported version")
	// ErrBadSignature: the signature does not verify against the entity id
	// inside the snapshot.
	ErrBadSignature = errors.New("snapshot: bad signature")
	// ErrTooLarge: a count or length exceeds the caller's Limits.
	ErrTooLarge = errors.New("snapshot: exceeds limits")
	// ErrInvalid: the Snapshot struct breaks a format rule (Encode side).
	ErrInvalid = errors.New("snapshot: invalid")
	// ErrIdentityMismatch: Encode was given a key that is not the
	// snapshot's entity.
	ErrIdentityMismatch = errors.New("snapshot: identity does not match entity id")
)

// Clone returns a deep copy that shares no memory with s; use it to keep a
// decoded snapshot after its input buffer is reused.
func (s *Snapshot) Clone() *Snapshot {
	c := *s
	if s.Horizon != nil {
		c.Horizon = make(map[uint64]uint64, len(s.Horizon))
		for k, v := range s.Horizon {
			c.Horizon[k] = v
		}
	}
	if s.Ledger != nil {
		c.Ledger = make([]Subscription, len(s.Ledger))
		for i, sub := range s.Ledger {
			sub.Token = cloneBytes(sub.Token)
			c.Ledger[i] = sub
		}
	}
	if s.Pages != nil {
		// One backing array for all pages: a single allocation and a
		// sequential copy instead of one per page.
		backing := make([]byte, 0, PageSize*len(s.Pages))
		c.Pages = make([]Page, len(s.Pages))
		for i, p := range s.Pages {
			start := len(backing)
			backing = append(backing, p.Data...)
			c.Pages[i] = Page{Index: p.Index, Data: backing[start:len(backing):len(backing)]}
		}
	}
	if s.Globals != nil {
		c.Globals = append(make([]Global, 0, len(s.Globals)), s.Globals...)
	}
	c.State = cloneBytes(s.State)
	c.Envelope = cloneBytes(s.Envelope)
	c.Annotations = s.Annotations.Clone()
	c.Outbox = s.Outbox.Clone()
	c.Signature = cloneBytes(s.Signature)
	return &c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// LiveBytes is the guest state carried: page bytes plus cooperative state.
// It is the numerator for snapshot and migration throughput figures.
func (s *Snapshot) LiveBytes() int {
	n := len(s.State)
	for _, p := range s.Pages {
		n += len(p.Data)
	}
	return n
}
