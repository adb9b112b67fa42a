package wire

import "fmt"

// Phase is a migration phase (SPEC R-M1). Phases only move forward, in this
// order; PhaseSnapshot is "phase 0" of an attempt.
type Phase uint8

// The phases, in order.
const (
	PhaseSnapshot Phase = iota + 1
	PhaseTransfer
	PhaseRestore
	PhaseReplay
	PhaseCutover
	PhaseComplete
)

func (p Phase) String() string {
	switch p {
	case PhaseSnapshot:
		return "snapshot"
	case PhaseTransfer:
		return "transfer"
	case PhaseRestore:
		return "restore"
	case PhaseReplay:
		return "replay"
	case PhaseCutover:
		return "cutover"
	case PhaseComplete:
		return "complete"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Valid reports whether p is one of the six phases.
func (p Phase) Valid() bool { return p >= PhaseSnapshot && p <= PhaseComplete }

// Kind identifies a message type on the wire. Values are part of the wire
// format; never renumber.
type Kind uint8

// Message kinds.
const (
	KindStart           Kind = 1
	KindPrepare         Kind = 2
	KindNeedModule      Kind = 3
	KindModuleDigest    Kind = 4
	KindSnapshotChunk   Kind = 5
	KindRestoreComplete Kind = 6
	KindReplayBatch     Kind = 7
	KindReplayAck       Kind = 8
	KindCutover         Kind = 9
	KindActivate        Kind = 10
	KindActivateAck     Kind = 11
	KindAbort           Kind = 12
	KindComplete        Kind = 13
	KindNotReady        Kind = 14
)

func (k Kind) String() string {
	switch k {
	case KindStart:
		return "Start"
	case KindPrepare:
		return "Prepare"
	case KindNeedModule:
		return "NeedModule"
	case KindModuleDigest:
		return "ModuleDigest"
	case KindSnapshotChunk:
		return "SnapshotChunk"
	case KindRestoreComplete:
		return "RestoreComplete"
	case KindReplayBatch:
		return "ReplayBatch"
	case KindReplayAck:
		return "ReplayAck"
	case KindCutover:
		return "Cutover"
	case KindActivate:
		return "Activate"
	case KindActivateAck:
		return "ActivateAck"
	case KindAbort:
		return "Abort"
	case KindComplete:
		return "Complete"
	case KindNotReady:
		return "NotReady"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// PhaseOf is the phase a message kind belongs to. Abort may be raised in any
// phase and carries its own; it reports 0 here.
func PhaseOf(k Kind) Phase {
	switch k {
	case KindStart:
		return PhaseSnapshot
	case KindPrepare, KindNeedModule, KindModuleDigest, KindSnapshotChunk, KindNotReady:
		return PhaseTransfer
	case KindRestoreComplete:
		return PhaseRestore
	case KindReplayBatch, KindReplayAck:
		return PhaseReplay
	case KindCutover, KindActivate, KindActivateAck:
		return PhaseCutover
	case KindComplete:
		return PhaseComplete
	}
	return 0
}
