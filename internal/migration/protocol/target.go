package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// TargetConfig configures the target side on one node.
type TargetConfig struct {
	Self   NodeID
	Limits Limits
	Timing Timing
}

// Target receives a daemon (SPEC R-M2..R-M6): it admits the migration,
// fetches the module if missing, reassembles and restores the snapshot,
// replays buffered events in input-sequence order exactly once, and goes
// live when it has applied the source's final sequence.
//
// One Target serves one migration id, across its attempts.
type Target struct {
	cfg   TargetConfig
	reasm *Reassembler

	started bool
	id      uint64
	attempt uint32
	prep    wire.Prepare
	phase   Phase

	admitPending, admitted  bool
	haveModule, fetching    bool
	needModuleSent          bool
	snapshot                []byte
	snapComplete, restoring bool
	restored                bool
	applied                 uint64
	finalSeq                uint64
	haveFinal               bool
	held                    []kept
	heldBytes               int

	lastHeard, lastSent time.Time

	done, live, closed bool
	err                error
	doneAt             time.Time
}

// NewTarget returns an idle target; its first message is a Prepare.
func NewTarget(cfg TargetConfig) (*Target, error) {
	cfg.Limits = cfg.Limits.withDefaults()
	cfg.Timing = cfg.Timing.withDefaults()
	if cfg.Self == "" {
		return nil, fmt.Errorf("%w: target needs its node id", ErrConfig)
	}
	if err := cfg.Limits.check(); err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, reasm: NewReassembler(cfg.Limits.MaxSnapshotBytes, cfg.Limits.MaxReassemblyBytes)}, nil
}

// Phase is the current phase, 0 before Prepare.
func (t *Target) Phase() Phase { return t.phase }

// Live reports whether the daemon went live here.
func (t *Target) Live() bool { return t.live }

// Attempt is the current attempt; the I/O layer tags the results it feeds
// back (Admission, ModuleFetched) with it.
func (t *Target) Attempt() uint32 { return t.attempt }

// Result reports whether the current attempt ended and how.
func (t *Target) Result() (done bool, err error) { return t.done, t.err }

// Idle reports whether the I/O layer may drop the machine: the attempt ended
// and the orchestrator said Complete, or PeerTimeout passed since.
func (t *Target) Idle(now time.Time) bool {
	return t.done && (t.closed || now.Sub(t.doneAt) >= t.cfg.Timing.PeerTimeout)
}

func (t *Target) header() wire.Header { return wire.Header{ID: t.id, Attempt: t.attempt} }

func (t *Target) wrongPhase(what string) error {
	return &PhaseError{Role: RoleTarget, What: what, Phase: t.phase}
}

// Step takes a message from an authenticated peer.
func (t *Target) Step(from NodeID, m Message, now time.Time) (Output, error) {
	var out Output
	if m == nil {
		return out, invalid("nil message")
	}
	if p, ok := m.(wire.Prepare); ok {
		return t.prepare(from, p, now)
	}
	if !t.started {
		return out, t.wrongPhase(m.Kind().String())
	}
	if err := checkHeader(m.Hdr(), t.id, t.attempt); err != nil {
		return out, err
	}
	if err := t.checkSender(from, m.Kind()); err != nil {
		return out, err
	}
	if t.done {
		return t.afterDone(m)
	}
	t.lastHeard = now
	p := t.prep
	switch m := m.(type) {
	case wire.ModuleDigest:
		if m.Digest != p.KindDigest {
			return Output{}, invalid("offered module %s, migrating %s", m.Digest, p.KindDigest)
		}
		if t.phase == PhaseTransfer && t.admitted && !t.haveModule && !t.fetching {
			t.fetching = true
			out.do(FetchModule{Digest: m.Digest, From: p.Source, Attempt: t.attempt})
		}
	case wire.SnapshotChunk:
		return t.chunk(m, now)
	case wire.ReplayBatch:
		return t.replay(m, now)
	case wire.Activate:
		if t.phase < PhaseReplay {
			return Output{}, t.wrongPhase(m.Kind().String())
		}
		if (t.haveFinal && m.FinalSeq != t.finalSeq) || m.FinalSeq < t.applied {
			return Output{}, invalid("final sequence %d (had %v %d), applied %d", m.FinalSeq, t.haveFinal, t.finalSeq, t.applied)
		}
		t.finalSeq, t.haveFinal = m.FinalSeq, true
		t.phase = PhaseCutover
		if t.applied == t.finalSeq {
			t.goLive(now, &out)
		} else {
			t.lastSent = now
			out.send(wire.ReplayAck{Header: t.header(), UpTo: t.applied}, p.Source)
		}
	case wire.Abort:
		t.abort(failureFromAbort(m), false, now, &out)
	case wire.Complete:
		return Output{}, t.wrongPhase(m.Kind().String())
	default:
		return Output{}, invalid("the target does not take %s", m.Kind())
	}
	return out, nil
}

// afterDone answers retries once the attempt is over (SPEC R-M12).
func (t *Target) afterDone(m Message) (Output, error) {
	var out Output
	if !t.live {
		if _, ok := m.(wire.Activate); ok && t.err != nil {
			// It gave up before going live and its Abort may have been
			// lost: a source past the cutover waits for this target alone,
			// so say it again or the daemon stays frozen for good.
			out.send(abortMsg(t.header(), t.phase, AsFailure(t.err)), t.prep.Source, t.prep.Orchestrator)
			return out, nil
		}
		return out, ErrFinished
	}
	switch m := m.(type) {
	case wire.Activate:
		if m.FinalSeq != t.finalSeq {
			return out, invalid("final sequence %d, went live at %d", m.FinalSeq, t.finalSeq)
		}
		out.send(wire.ActivateAck{Header: t.header(), AppliedSeq: t.finalSeq}, t.prep.Source, t.prep.Orchestrator)
	case wire.ReplayBatch:
		out.send(wire.ReplayAck{Header: t.header(), UpTo: t.finalSeq}, t.prep.Source)
	case wire.Complete:
		t.closed = true
	case wire.Abort:
		return out, fmt.Errorf("%w: the daemon is live here", ErrPastCutover)
	default:
		return out, ErrFinished
	}
	return out, nil
}

func (t *Target) checkSender(from NodeID, k wire.Kind) error {
	p := t.prep
	switch k {
	case wire.KindModuleDigest, wire.KindSnapshotChunk, wire.KindReplayBatch, wire.KindActivate:
		return checkSender(RoleTarget, k, from, p.Source)
	case wire.KindComplete:
		return checkSender(RoleTarget, k, from, p.Orchestrator)
	case wire.KindAbort:
		return checkSender(RoleTarget, k, from, p.Source, p.Orchestrator)
	}
	return invalid("the target does not take %s", k)
}

func (t *Target) prepare(from NodeID, p wire.Prepare, now time.Time) (Output, error) {
	var out Output
	if err := checkSender(RoleTarget, p.Kind(), from, p.Source); err != nil {
		return out, err
	}
	if p.Target != t.cfg.Self {
		return out, invalid("prepare names target %q, this is %q", p.Target, t.cfg.Self)
	}
	if !t.started {
		t.begin(p, now, &out)
		return out, nil
	}
	if p.ID != t.id {
		return out, fmt.Errorf("%w: id %d, this is %d", ErrUnknownMigration, p.ID, t.id)
	}
	if p.Plan != t.prep.Plan {
		return out, invalid("prepare for a different plan")
	}
	switch {
	case p.Attempt < t.attempt:
		return out, fmt.Errorf("%w: attempt %d, current %d", ErrStaleAttempt, p.Attempt, t.attempt)
	case p.Attempt == t.attempt:
		if p.SnapshotSeq != t.prep.SnapshotSeq || p.InputSeq != t.prep.InputSeq || p.TotalBytes != t.prep.TotalBytes {
			return out, invalid("prepare re-sent with another snapshot")
		}
		if t.done {
			return out, ErrFinished
		}
		t.lastHeard = now
		t.answerAgain(&out)
		return out, nil
	}
	if t.live {
		return out, ErrFinished
	}
	if !t.done {
		t.abort(failure(StateFailed, "superseded by attempt %d", p.Attempt), false, now, &out)
	}
	t.begin(p, now, &out)
	return out, nil
}

// answerAgain repeats the last answer for a retried Prepare or chunk.
func (t *Target) answerAgain(out *Output) {
	switch {
	case t.restored:
		out.send(wire.RestoreComplete{Header: t.header(), RestoredInputSeq: t.prep.InputSeq}, t.prep.Source, t.prep.Orchestrator)
	case t.needModuleSent && !t.haveModule && !t.fetching:
		out.send(wire.NeedModule{Header: t.header(), Digest: t.prep.KindDigest}, t.prep.Source)
	}
}

func (t *Target) begin(p wire.Prepare, now time.Time, out *Output) {
	t.reasm.Drop(p.Origin)
	*t = Target{cfg: t.cfg, reasm: t.reasm, started: true, id: p.ID, attempt: p.Attempt, prep: p,
		phase: PhaseTransfer, lastHeard: now, lastSent: now, admitPending: true}
	if err := t.reasm.Begin(p.Origin, p.SnapshotSeq, p.ChunkCount, p.TotalBytes); err != nil {
		t.abort(failure(StateFailed, "%v", err), true, now, out)
		return
	}
	out.do(Admit{Origin: p.Origin, KindDigest: p.KindDigest, Source: p.Source,
		TransportIdentity: p.TransportIdentity, LookupRegisteredIdentity: !p.TransportIdentity,
		Attempt: p.Attempt, TotalBytes: p.TotalBytes})
}

func (t *Target) chunk(c wire.SnapshotChunk, now time.Time) (Output, error) {
	var out Output
	if t.phase > PhaseTransfer || t.snapComplete {
		t.answerAgain(&out) // a retried chunk after a lost RestoreComplete
		return out, nil
	}
	if c.Origin != t.prep.Origin {
		return out, invalid("chunk for origin %016x, migrating %016x", c.Origin, t.prep.Origin)
	}
	snap, complete, err := t.reasm.Add(c)
	switch {
	case errors.Is(err, ErrStaleChunk), errors.Is(err, ErrGenerationMismatch), errors.Is(err, ErrNoReassembly):
		return out, err
	case err != nil:
		// The authenticated source sent inconsistent data; retrying will
		// not fix that.
		t.abort(failure(StateFailed, "%v", err), true, now, &out)
		return out, err
	case complete:
		t.snapshot, t.snapComplete = snap, true
		t.tryRestore(&out)
	}
	return out, nil
}

func (t *Target) tryRestore(out *Output) {
	if !t.admitted || !t.haveModule || !t.snapComplete || t.restoring {
		return
	}
	t.restoring = true
	t.phase = PhaseRestore
	p := t.prep
	out.do(RestoreSnapshot{Attempt: t.attempt, Origin: p.Origin, KindDigest: p.KindDigest, Snapshot: t.snapshot,
		Envelope: p.Envelope, MigrationID: t.id, Target: p.Target})
}

func (t *Target) replay(b wire.ReplayBatch, now time.Time) (Output, error) {
	var out Output
	if t.phase < PhaseReplay {
		return out, t.wrongPhase(b.Kind().String())
	}
	if last := b.Events[len(b.Events)-1].Seq; t.haveFinal && last > t.finalSeq {
		return out, invalid("event %d beyond the final sequence %d", last, t.finalSeq)
	}
	var gap error
	for _, ev := range b.Events {
		if ev.Seq <= t.applied {
			continue // already applied: deduplicated by input sequence
		}
		if ev.Seq != t.applied+1 {
			gap = fmt.Errorf("%w: got %d after %d", ErrReplayGap, ev.Seq, t.applied)
			break
		}
		out.do(ApplyEvent{Origin: t.prep.Origin, Event: ev})
		t.applied = ev.Seq
	}
	t.lastSent = now
	out.send(wire.ReplayAck{Header: t.header(), UpTo: t.applied}, t.prep.Source)
	if t.haveFinal && t.applied == t.finalSeq {
		t.goLive(now, &out)
	}
	return out, gap
}

func (t *Target) goLive(now time.Time, out *Output) {
	p := t.prep
	// Held events came in after the flip, so after every replayed one;
	// apply them before anything routed here directly.
	for i, k := range t.held {
		k.ev.Seq = t.finalSeq + uint64(i) + 1
		out.do(ApplyEvent{Origin: p.Origin, Event: k.ev, Token: k.tok})
	}
	t.held, t.heldBytes = nil, 0
	out.do(GoLive{Origin: p.Origin}, Resubscribe{Origin: p.Origin})
	out.send(wire.ActivateAck{Header: t.header(), AppliedSeq: t.finalSeq}, p.Source, p.Orchestrator)
	t.live = true
	t.phase = PhaseComplete
	t.finish(nil, now, out)
}

// Handle takes a result or event from the I/O layer.
func (t *Target) Handle(in Input, now time.Time) (Output, error) {
	var out Output
	if ev, ok := in.(EventArrived); ok {
		return out, t.hold(ev)
	}
	if err := t.inputAttempt(in); err != nil {
		return out, err
	}
	p := t.prep
	switch in := in.(type) {
	case Admission:
		if !t.admitPending {
			return out, t.wrongPhase(inputName(in))
		}
		t.admitPending = false
		switch {
		case in.Err != nil:
			t.abort(AsFailure(in.Err), true, now, &out)
		case !in.Ready:
			t.reasm.Drop(p.Origin)
			out.send(wire.NotReady{Header: t.header()}, p.Source, p.Orchestrator)
			t.finish(&Failure{Reason: NotReady, Text: "runtime not ready"}, now, &out)
		case !p.TransportIdentity && !in.RegisteredIdentity:
			t.abort(failure(IdentityTransportFailed, "transport identity is off and no identity is registered for origin %016x (%s)", p.Origin, p.KindDigest), true, now, &out)
		default:
			t.admitted = true
			t.haveModule = in.HaveModule
			if !t.haveModule {
				t.needModuleSent = true
				t.lastSent = now
				out.send(wire.NeedModule{Header: t.header(), Digest: p.KindDigest}, p.Source)
			}
			t.tryRestore(&out)
		}
	case ModuleFetched:
		if !t.fetching || t.haveModule {
			return out, t.wrongPhase(inputName(in))
		}
		if in.Err != nil {
			t.abort(failure(FactoryNotFound, "module %s: %v", p.KindDigest, in.Err), true, now, &out)
			return out, nil
		}
		if in.Digest != p.KindDigest {
			return out, invalid("fetched module %s, need %s", in.Digest, p.KindDigest)
		}
		t.fetching, t.haveModule = false, true
		t.tryRestore(&out)
	case Restored:
		if !t.restoring || t.restored {
			return out, t.wrongPhase(inputName(in))
		}
		if in.Err != nil {
			t.abort(AsFailure(in.Err), true, now, &out)
			return out, nil
		}
		if in.InputSeq != p.InputSeq {
			t.abort(failure(StateFailed, "restored input sequence %d, prepare said %d", in.InputSeq, p.InputSeq), true, now, &out)
			return out, nil
		}
		t.restored, t.snapshot = true, nil
		t.applied = in.InputSeq
		t.phase = PhaseReplay
		out.send(wire.RestoreComplete{Header: t.header(), RestoredInputSeq: in.InputSeq}, p.Source, p.Orchestrator)
	default:
		return out, invalid("the target does not take %s", inputName(in))
	}
	return out, nil
}

func (t *Target) inputAttempt(in Input) error {
	var a uint32
	switch in := in.(type) {
	case Admission:
		a = in.Attempt
	case ModuleFetched:
		a = in.Attempt
	case Restored:
		a = in.Attempt
	}
	switch {
	case !t.started:
		return t.wrongPhase(inputName(in))
	case a != t.attempt:
		return fmt.Errorf("%w: %s for attempt %d, current %d", ErrStaleAttempt, inputName(in), a, t.attempt)
	case t.done:
		return ErrFinished
	}
	return nil
}

// hold keeps an event that reached this node before the daemon is live
// (the source forwards late events after its flip).
func (t *Target) hold(in EventArrived) error {
	switch {
	case !t.started:
		return t.wrongPhase("EventArrived")
	case t.done:
		return ErrFinished // live: deliver directly; aborted: not ours
	}
	lim := t.cfg.Limits
	if len(t.held) >= lim.MaxBufferedEvents || t.heldBytes+len(in.Payload) > lim.MaxBufferedBytes {
		return fmt.Errorf("%w: %d events held", ErrBufferFull, len(t.held))
	}
	t.held = append(t.held, kept{ev: Event{Sender: in.Sender, SenderSeq: in.SenderSeq, Payload: in.Payload, Once: in.Once}, tok: in.Token})
	t.heldBytes += len(in.Payload)
	return nil
}

// abort ends the attempt without the daemon: drop what was restored and the
// held events (the source kept copies of everything it forwarded).
func (t *Target) abort(f *Failure, notify bool, now time.Time, out *Output) {
	out.do(Discard{Origin: t.prep.Origin})
	if notify {
		out.send(abortMsg(t.header(), t.phase, f), t.prep.Source, t.prep.Orchestrator)
	}
	t.reasm.Drop(t.prep.Origin)
	t.snapshot, t.held, t.heldBytes = nil, nil, 0
	t.finish(f, now, out)
}

func (t *Target) finish(err error, now time.Time, out *Output) {
	t.done, t.err, t.doneAt = true, err, now
	if err == nil {
		out.do(Done{})
		return
	}
	out.do(Done{Err: err})
}

// Tick advances time: retransmission and the peer timeout.
func (t *Target) Tick(now time.Time) Output {
	var out Output
	if !t.started || t.done {
		return out
	}
	tm := t.cfg.Timing
	if now.Sub(t.lastHeard) >= tm.PeerTimeout {
		t.abort(failure(Timeout, "source silent for %s in phase %s", tm.PeerTimeout, t.phase), true, now, &out)
		return out
	}
	if now.Sub(t.lastSent) < tm.Retransmit {
		return out
	}
	switch {
	case t.phase == PhaseTransfer && t.needModuleSent && !t.haveModule && !t.fetching:
		t.lastSent = now
		out.send(wire.NeedModule{Header: t.header(), Digest: t.prep.KindDigest}, t.prep.Source)
	case t.phase == PhaseCutover:
		t.lastSent = now
		out.send(wire.ReplayAck{Header: t.header(), UpTo: t.applied}, t.prep.Source)
	}
	return out
}
