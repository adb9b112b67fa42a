package wire

// NodeID names a mesh node as the transport authenticates it.
type NodeID string

// Header is common to every message: which migration and which attempt of it.
// The attempt lets every party drop messages of an earlier attempt, so a
// failure from attempt k can never be mistaken for the outcome of k+1
// (SPEC R-M9).
type Header struct {
	ID      uint64 // migration id, chosen by the orchestrator
	Attempt uint32 // 1 for the first attempt, +1 per NotReady retry
}

// Hdr returns the header; it lets every message satisfy Message by embedding.
func (h Header) Hdr() Header { return h }

// Message is any migration message.
type Message interface {
	Kind() Kind
	Hdr() Header
}

// Plan is what a migration is about; Start and Prepare both carry it so that
// each party can check a message's sender against the role it expects.
type Plan struct {
	Origin            uint64 // the daemon's origin hash
	KindDigest        string // module digest, "sha256:<64 lowercase hex>"
	Source            NodeID
	Target            NodeID
	Orchestrator      NodeID
	TransportIdentity bool // seal the daemon seed to the target (SPEC R-M5)
}

// Start asks the source to freeze and snapshot the daemon (orchestrator → source).
type Start struct {
	Header
	Plan
}

// Prepare announces a snapshot to the target and the orchestrator (source →
// target, orchestrator). The module digest travels first, in Plan.KindDigest,
// so the target can fetch the module while chunks stream in.
type Prepare struct {
	Header
	Plan
	SnapshotSeq uint64 // the snapshot's own sequence
	InputSeq    uint64 // daemon input sequence captured by the snapshot
	TotalBytes  uint64
	ChunkCount  uint32
	Envelope    []byte // sealed identity; empty iff !TransportIdentity
}

// NeedModule: the target lacks the module (target → source).
type NeedModule struct {
	Header
	Digest string
}

// ModuleDigest: the source has authorised the target to fetch the module by
// this digest (source → target).
type ModuleDigest struct {
	Header
	Digest string
}

// SnapshotChunk is one piece of the snapshot (source → target).
type SnapshotChunk struct {
	Header
	Origin      uint64
	SnapshotSeq uint64
	Index       uint32
	Count       uint32
	TotalBytes  uint64
	Data        []byte
}

// RestoreComplete: the target restored the snapshot (target → source,
// orchestrator). Also the answer to a retried chunk or Prepare (SPEC R-M12).
type RestoreComplete struct {
	Header
	RestoredInputSeq uint64
}

// Event is one event for the daemon. Seq is the daemon's own input sequence,
// assigned by the source when it buffered the event; replay deduplicates by
// it, not by the sender's sequence (SPEC R-M4).
type Event struct {
	Seq       uint64
	Sender    uint64 // sender origin hash
	SenderSeq uint64
	Payload   []byte
	Once      bool // exactly-once: applied only if the horizon lacks SenderSeq
}

// ReplayBatch carries buffered events in input-sequence order (source → target).
type ReplayBatch struct {
	Header
	Events []Event
}

// ReplayAck: every event up to UpTo is applied (target → source), or, from the
// source to the orchestrator, the backlog is drained and cutover may start.
type ReplayAck struct {
	Header
	UpTo uint64
}

// Cutover tells the source to flip routing and hand over (orchestrator → source).
type Cutover struct{ Header }

// Activate: FinalSeq is the last buffered event; the target goes live once it
// has applied it (source → target).
type Activate struct {
	Header
	FinalSeq uint64
}

// ActivateAck: the target is live (target → source, orchestrator).
type ActivateAck struct {
	Header
	AppliedSeq uint64
}

// Abort ends an attempt. Phase is where the sender was when it gave up.
type Abort struct {
	Header
	Phase    Phase
	Reason   Reason
	Attempts uint32 // meaningful for NotReadyTimeout
	Text     string
}

// Complete: the migration is done; parties may drop their records
// (orchestrator → source, target).
type Complete struct{ Header }

// NotReady: the target's runtime is not ready yet; retriable (target →
// source, orchestrator).
type NotReady struct{ Header }

func (Start) Kind() Kind           { return KindStart }
func (Prepare) Kind() Kind         { return KindPrepare }
func (NeedModule) Kind() Kind      { return KindNeedModule }
func (ModuleDigest) Kind() Kind    { return KindModuleDigest }
func (SnapshotChunk) Kind() Kind   { return KindSnapshotChunk }
func (RestoreComplete) Kind() Kind { return KindRestoreComplete }
func (ReplayBatch) Kind() Kind     { return KindReplayBatch }
func (ReplayAck) Kind() Kind       { return KindReplayAck }
func (Cutover) Kind() Kind         { return KindCutover }
func (Activate) Kind() Kind        { return KindActivate }
func (ActivateAck) Kind() Kind     { return KindActivateAck }
func (Abort) Kind() Kind           { return KindAbort }
func (Complete) Kind() Kind        { return KindComplete }
func (NotReady) Kind() Kind        { return KindNotReady }
