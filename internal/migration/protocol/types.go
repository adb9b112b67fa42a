package protocol

import "github.com/wasmesh/wasmesh/internal/migration/wire"

// Re-exported wire types, so callers of the state machines need only this
// package for everyday use.
type (
	NodeID  = wire.NodeID
	Phase   = wire.Phase
	Message = wire.Message
	Event   = wire.Event
	Reason  = wire.Reason
)

// Phases (SPEC R-M1), re-exported.
const (
	PhaseSnapshot = wire.PhaseSnapshot
	PhaseTransfer = wire.PhaseTransfer
	PhaseRestore  = wire.PhaseRestore
	PhaseReplay   = wire.PhaseReplay
	PhaseCutover  = wire.PhaseCutover
	PhaseComplete = wire.PhaseComplete
)

// Role is a party in a migration.
type Role uint8

// Roles.
const (
	RoleOrchestrator Role = iota + 1
	RoleSource
	RoleTarget
)

func (r Role) String() string {
	switch r {
	case RoleOrchestrator:
		return "orchestrator"
	case RoleSource:
		return "source"
	case RoleTarget:
		return "target"
	}
	return "role?"
}

// Accepts reports whether a machine of role r takes messages of kind k. The
// I/O layer delivers a message that reaches a node to every local machine of
// that migration whose role accepts its kind; a node that plays two roles
// thus gets one copy per role.
func (r Role) Accepts(k wire.Kind) bool {
	switch r {
	case RoleOrchestrator:
		switch k {
		case wire.KindPrepare, wire.KindRestoreComplete, wire.KindReplayAck,
			wire.KindActivateAck, wire.KindAbort, wire.KindNotReady:
			return true
		}
	case RoleSource:
		switch k {
		case wire.KindStart, wire.KindNeedModule, wire.KindRestoreComplete,
			wire.KindReplayAck, wire.KindCutover, wire.KindActivateAck,
			wire.KindAbort, wire.KindComplete, wire.KindNotReady:
			return true
		}
	case RoleTarget:
		switch k {
		case wire.KindPrepare, wire.KindModuleDigest, wire.KindSnapshotChunk,
			wire.KindReplayBatch, wire.KindActivate, wire.KindAbort, wire.KindComplete:
			return true
		}
	}
	return false
}
