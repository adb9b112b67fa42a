package protocol

// Outbound is one message to send.
type Outbound struct {
	To  NodeID
	Msg Message
}

// Output is what one call into a machine asks the I/O layer to do: send the
// messages (order does not matter for correctness, but keeping it is
// cheaper) and perform the effects in order.
type Output struct {
	Messages []Outbound
	Effects  []Effect
}

// Empty reports whether there is nothing to do.
func (o Output) Empty() bool { return len(o.Messages) == 0 && len(o.Effects) == 0 }

func (o *Output) send(m Message, to ...NodeID) {
	for i, n := range to {
		dup := false
		for _, prev := range to[:i] {
			dup = dup || prev == n
		}
		if !dup {
			o.Messages = append(o.Messages, Outbound{To: n, Msg: m})
		}
	}
}

func (o *Output) do(e ...Effect) { o.Effects = append(o.Effects, e...) }

func (o *Output) merge(p Output) {
	o.Messages = append(o.Messages, p.Messages...)
	o.Effects = append(o.Effects, p.Effects...)
}

// Effect is something only the I/O layer can do. Switch on the concrete
// type; every effect lists which role emits it.
type Effect interface{ isEffect() }

// Done (every role, exactly once) reports the machine's outcome: Err is nil
// on success, otherwise a *Failure.
type Done struct{ Err error }

// --- source effects ---

// FreezeAndBuffer (source): stop delivering events to the daemon; from now on
// hand every event for it to Source.Handle(EventArrived{...}). Pair it
// atomically with the TakeSnapshot that follows, between two events.
type FreezeAndBuffer struct{ Origin uint64 }

// TakeSnapshot (source): snapshot the frozen daemon and feed back
// SnapshotTaken or SnapshotFailed with the same Attempt. If Seal is set,
// seal the daemon seed for Target with envelope.Seal (binding MigrationID,
// Origin, Target and the snapshot's chain head) and return it in
// SnapshotTaken.Envelope; a missing prerequisite is SnapshotFailed with an
// IdentityTransportFailed Failure, never an unsealed snapshot.
type TakeSnapshot struct {
	MigrationID uint64
	Attempt     uint32
	Origin      uint64
	Target      NodeID
	Seal        bool
}

// AllowModuleFetch (source): let Peer fetch the module with Digest — only
// the migration's target, only the daemon's own module.
type AllowModuleFetch struct {
	Peer   NodeID
	Digest string
}

// FlipRoute (source): atomically route the daemon's events to To. Events
// that still reach this node go to Source.Handle, which forwards them.
type FlipRoute struct {
	Origin uint64
	To     NodeID
}

// ForwardEvent (source): deliver Event to To as an ordinary remote delivery.
// Event.Seq is 0: the receiver assigns input sequences. Token is the one
// the event arrived with, so the I/O layer answers that event's sender.
type ForwardEvent struct {
	To    NodeID
	Event Event
	Token Token
}

// ResumeLocal (source): the migration failed and this node keeps the
// daemon. Route its events locally again, unfreeze it, and apply Events in
// order (each carries the input sequence it was buffered with) before any
// new event. Tokens[i] is the token Events[i] arrived with (0 if none).
type ResumeLocal struct {
	Origin uint64
	Events []Event
	Tokens []Token
}

// Unsubscribe (source, after handover): drop this node's channel
// subscriptions for the daemon (SPEC R-C2).
type Unsubscribe struct{ Origin uint64 }

// Release (source, after handover): drop the frozen daemon instance.
type Release struct{ Origin uint64 }

// WipeKey (source, after handover): zero this node's copy of the daemon key
// (SPEC R-M5).
type WipeKey struct{ Origin uint64 }

// --- target effects ---

// Admit (target): check that this node can take the daemon and feed back
// Admission. This is also the LookupRegisteredIdentity callback: when
// LookupRegisteredIdentity is set (TransportIdentity=false, so no key
// travels) report whether an identity for (KindDigest, Origin) was
// pre-registered. The I/O layer should also check that Source is where
// Origin currently lives.
type Admit struct {
	Origin                   uint64
	KindDigest               string
	Source                   NodeID
	TransportIdentity        bool
	LookupRegisteredIdentity bool

	// Attempt is the attempt to tag the Admission with; TotalBytes the
	// size of the snapshot it will receive (what admitting it reserves).
	Attempt    uint32
	TotalBytes uint64
}

// FetchModule (target): fetch the module by Digest from From and feed back
// ModuleFetched tagged with Attempt.
type FetchModule struct {
	Digest  string
	From    NodeID
	Attempt uint32
}

// RestoreSnapshot (target): decode and verify the snapshot (signature,
// entity id, module digest), open Envelope with envelope.Open against
// Binding (an empty Envelope means use the pre-registered identity), build
// the daemon without making it live, and feed back Restored.
type RestoreSnapshot struct {
	Attempt    uint32
	Origin     uint64
	KindDigest string
	Snapshot   []byte
	Envelope   []byte
	// Binding fields for envelope.Open; ChainHead comes from the snapshot.
	MigrationID uint64
	Target      NodeID
}

// ApplyEvent (target): deliver Event to the restored daemon, in order. A
// guest error is that event's error; the event still counts as applied.
// Token is non-zero only for an event held here (EventArrived at the
// target): a replayed event arrived on the source, whose sender waits there
// and is found by Event.Seq (Source.ReplayedToken).
type ApplyEvent struct {
	Origin uint64
	Event  Event
	Token  Token
}

// GoLive (target): make the daemon live here: route its events locally and
// announce the new location.
type GoLive struct{ Origin uint64 }

// Resubscribe (target, after going live): re-subscribe every entry of the
// daemon's ledger (SPEC R-C2).
type Resubscribe struct{ Origin uint64 }

// Discard (target): the migration failed; drop whatever was restored and
// any events held for it (the source kept copies).
type Discard struct{ Origin uint64 }

func (Done) isEffect()             {}
func (FreezeAndBuffer) isEffect()  {}
func (TakeSnapshot) isEffect()     {}
func (AllowModuleFetch) isEffect() {}
func (FlipRoute) isEffect()        {}
func (ForwardEvent) isEffect()     {}
func (ResumeLocal) isEffect()      {}
func (Unsubscribe) isEffect()      {}
func (Release) isEffect()          {}
func (WipeKey) isEffect()          {}
func (Admit) isEffect()            {}
func (FetchModule) isEffect()      {}
func (RestoreSnapshot) isEffect()  {}
func (ApplyEvent) isEffect()       {}
func (GoLive) isEffect()           {}
func (Resubscribe) isEffect()      {}
func (Discard) isEffect()          {}

// Input is a result or occurrence the I/O layer feeds into Handle.
type Input interface{ isInput() }

// SnapshotTaken (to source): the result of TakeSnapshot.
type SnapshotTaken struct {
	Attempt     uint32
	Snapshot    []byte // encoded snapshot; may be small for stateless daemons
	SnapshotSeq uint64
	InputSeq    uint64 // the daemon's input sequence captured by the snapshot
	Envelope    []byte // sealed identity iff TakeSnapshot.Seal
}

// SnapshotFailed (to source): TakeSnapshot could not be done. A *Failure
// keeps its reason (e.g. ComputeNotSupported, IdentityTransportFailed);
// anything else becomes StateFailed.
type SnapshotFailed struct {
	Attempt uint32
	Err     error
}

// EventArrived (to source while migrating; to target before it is live):
// an event for the daemon that the I/O layer must not deliver itself.
type EventArrived struct {
	Sender    uint64
	SenderSeq uint64
	Payload   []byte
	Once      bool // exactly-once (host.Event.Once): the target deduplicates it too
	// Token is the I/O layer's handle on the event's sender; the machine
	// keeps it with the event and hands it back on the effect that
	// disposes of the event, so the I/O layer never mirrors which events
	// the machine kept.
	Token Token
}

// Token is an opaque handle the I/O layer gives an event it hands in
// (EventArrived) and gets back on ApplyEvent, ForwardEvent and ResumeLocal.
// It is local to one node and never encoded; 0 means none.
type Token uint64

// kept is an event a machine holds together with its token.
type kept struct {
	ev  Event
	tok Token
}

func eventsOf(ks []kept) []Event {
	evs := make([]Event, len(ks))
	for i, k := range ks {
		evs[i] = k.ev
	}
	return evs
}

// PeerDown (to source): membership has declared Node permanently gone. Only
// this lets a source take the daemon back after it sent Activate, because a
// live target that merely lost the ack would otherwise make two owners.
type PeerDown struct{ Node NodeID }

// Admission (to target): the result of Admit.
type Admission struct {
	Attempt            uint32
	Ready              bool  // false → NotReady (retriable)
	HaveModule         bool  // false → fetch it from the source
	RegisteredIdentity bool  // answer to LookupRegisteredIdentity
	Err                error // refuse for another reason (e.g. ComputeNotSupported)
}

// ModuleFetched (to target): the result of FetchModule.
type ModuleFetched struct {
	Attempt uint32
	Digest  string
	Err     error
}

// Restored (to target): the result of RestoreSnapshot. Err from a bad
// envelope should be IdentityFailed(err).
type Restored struct {
	Attempt  uint32
	InputSeq uint64
	Err      error
}

func (SnapshotTaken) isInput()  {}
func (SnapshotFailed) isInput() {}
func (EventArrived) isInput()   {}
func (PeerDown) isInput()       {}
func (Admission) isInput()      {}
func (ModuleFetched) isInput()  {}
func (Restored) isInput()       {}

func inputName(in Input) string {
	switch in.(type) {
	case SnapshotTaken:
		return "SnapshotTaken"
	case SnapshotFailed:
		return "SnapshotFailed"
	case EventArrived:
		return "EventArrived"
	case PeerDown:
		return "PeerDown"
	case Admission:
		return "Admission"
	case ModuleFetched:
		return "ModuleFetched"
	case Restored:
		return "Restored"
	}
	return "input"
}
