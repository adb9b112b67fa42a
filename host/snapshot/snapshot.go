// Package snapshot is the byte format of a daemon snapshot (SPEC R-S1..R-S4):
// everything needed to continue a daemon elsewhere, versioned, signed by the
// daemon key and strictly decoded.
package snapshot

import (
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

	ChainHead       chain.Link // last link emitted (chain.Genesis when none)
	HeadPayloadHash [32]byte   // chain.PayloadHash of the head payload

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

	// Signature is the daemon's ed25519 signature; set by Encode, checked
	// by Decode against EntityID.
	Signature []byte
}
