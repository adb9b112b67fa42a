package protocol

import (
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// SourceConfig configures the source side on one node.
type SourceConfig struct {
	Self   NodeID
	Limits Limits
	Timing Timing
}

// Source is the node that hosts the daemon (SPEC R-M2, R-M4). It freezes
// the daemon, ships its snapshot, buffers every event from the snapshot on
// with the daemon's own input sequence, replays them to the target and,
// at cutover, flips routing and hands over. Until it sends Activate it can
// always take the daemon back with every event; after that only the target
// can release it (Abort) or membership can declare the target gone
// (PeerDown), because a live target whose ack was lost must not get a twin.
//
// One Source serves one migration id of one daemon, across its attempts.
type Source struct {
	cfg     SourceConfig
	started bool
	id      uint64
	attempt uint32
	plan    wire.Plan
	phase   Phase

	snapshot     []byte // dropped once restored; snapTotal stays for re-answers
	snapTotal    int
	haveSnapshot bool
	snapSeq      uint64
	inputSeq     uint64
	envelope     []byte

	unnumbered []kept // arrived after the freeze, before the snapshot result
	buf        []kept // numbered inputSeq+1..., kept until handover
	bufBytes   int
	forwarded  []kept // late events forwarded after the flip, kept until ack
	sentUpTo   uint64
	acked      uint64
	drainAt    uint64
	drained    bool
	flipped    bool
	finalSeq   uint64

	// replayed: after the handover, the tokens of buf (by input sequence
	// from inputSeq+1), so the target's reports find their senders.
	replayed []Token

	lastSent, lastChunks, lastHeard time.Time

	done       bool
	handedOver bool
	err        error
	doneAt     time.Time
}

// NewSource returns an idle source; its first input is a Start.
func NewSource(cfg SourceConfig) (*Source, error) {
	cfg.Limits = cfg.Limits.withDefaults()
	cfg.Timing = cfg.Timing.withDefaults()
	if cfg.Self == "" {
		return nil, fmt.Errorf("%w: source needs its node id", ErrConfig)
	}
	if err := cfg.Limits.check(); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg}, nil
}

// Phase is the current phase, 0 before Start.
func (s *Source) Phase() Phase { return s.phase }

// Result reports whether the current attempt ended and how.
func (s *Source) Result() (done bool, err error) { return s.done, s.err }

// ReplayedToken is the token of the buffered event numbered seq (the one
// replayed on the target under that input sequence), so the I/O layer
// answers its sender with the outputs the target reports back. It answers
// until the handover and after it; not after an abort, which hands every
// token back in ResumeLocal.
func (s *Source) ReplayedToken(seq uint64) (Token, bool) {
	if seq <= s.inputSeq {
		return 0, false
	}
	i := seq - s.inputSeq - 1
	switch {
	case s.handedOver && i < uint64(len(s.replayed)):
		return s.replayed[i], s.replayed[i] != 0
	case !s.done && i < uint64(len(s.buf)):
		return s.buf[i].tok, s.buf[i].tok != 0
	}
	return 0, false
}

// Idle reports whether the I/O layer may drop the machine: the attempt ended
// at least PeerTimeout ago, so stragglers have had time to arrive.
func (s *Source) Idle(now time.Time) bool {
	return s.done && now.Sub(s.doneAt) >= s.cfg.Timing.PeerTimeout
}

func (s *Source) header() wire.Header { return wire.Header{ID: s.id, Attempt: s.attempt} }

func (s *Source) lastSeq() uint64 { return s.inputSeq + uint64(len(s.buf)) }

// Step takes a message from an authenticated peer.
func (s *Source) Step(from NodeID, m Message, now time.Time) (Output, error) {
	var out Output
	if m == nil {
		return out, invalid("nil message")
	}
	if st, ok := m.(wire.Start); ok {
		return s.start(from, st, now)
	}
	if !s.started {
		return out, &PhaseError{Role: RoleSource, What: m.Kind().String()}
	}
	if err := checkHeader(m.Hdr(), s.id, s.attempt); err != nil {
		return out, err
	}
	if err := s.checkSender(from, m.Kind()); err != nil {
		return out, err
	}
	if s.done {
		// Late copies of the handover's confirmations are expected.
		if s.handedOver && (m.Kind() == wire.KindActivateAck || m.Kind() == wire.KindComplete) {
			return out, nil
		}
		if m.Kind() == wire.KindCutover {
			if s.handedOver {
				// The orchestrator missed the target's ActivateAck: ask
				// the live target again, it answers both of us.
				out.send(wire.Activate{Header: s.header(), FinalSeq: s.finalSeq}, s.plan.Target)
			} else if s.err != nil {
				// It missed our Abort, and past its cutover it waits for
				// word from us: say it again.
				out.send(abortMsg(s.header(), s.phase, AsFailure(s.err)), s.plan.Orchestrator)
			}
			return out, nil
		}
		return out, ErrFinished
	}
	s.lastHeard = now
	switch m := m.(type) {
	case wire.NeedModule:
		if s.phase < PhaseTransfer {
			return Output{}, s.wrongPhase(m)
		}
		if m.Digest != s.plan.KindDigest {
			return Output{}, invalid("target asked for module %s, daemon runs %s", m.Digest, s.plan.KindDigest)
		}
		if s.phase == PhaseTransfer {
			out.do(AllowModuleFetch{Peer: s.plan.Target, Digest: m.Digest})
			out.send(wire.ModuleDigest{Header: s.header(), Digest: m.Digest}, s.plan.Target)
		}
	case wire.RestoreComplete:
		if s.phase < PhaseTransfer {
			return Output{}, s.wrongPhase(m)
		}
		if s.phase == PhaseTransfer {
			if m.RestoredInputSeq != s.inputSeq {
				s.abort(failure(StateFailed, "target restored input sequence %d, snapshot had %d", m.RestoredInputSeq, s.inputSeq), true, now, &out)
				return out, nil
			}
			s.phase = PhaseReplay
			s.snapshot = nil
			s.drainAt = s.lastSeq()
			s.sendEvents(s.sentUpTo+1, now, &out)
			s.checkDrained(&out)
		}
	case wire.ReplayAck:
		if s.phase < PhaseReplay {
			return Output{}, s.wrongPhase(m)
		}
		if m.UpTo > s.sentUpTo {
			return Output{}, invalid("ack for %d, only sent up to %d", m.UpTo, s.sentUpTo)
		}
		s.acked = max(s.acked, m.UpTo)
		s.checkDrained(&out)
	case wire.Cutover:
		switch {
		case s.phase < PhaseReplay:
			return Output{}, s.wrongPhase(m)
		case s.phase == PhaseReplay:
			s.phase = PhaseCutover
			s.flipped = true
			s.finalSeq = s.lastSeq()
			out.do(FlipRoute{Origin: s.plan.Origin, To: s.plan.Target})
			s.sendEvents(s.sentUpTo+1, now, &out)
		case s.acked < s.finalSeq:
			// A retried Cutover resets the timer that would resend lost
			// events (Tick), so resend what the target has not acked.
			s.sendEvents(s.acked+1, now, &out)
		}
		s.lastSent = now
		out.send(wire.Activate{Header: s.header(), FinalSeq: s.finalSeq}, s.plan.Target)
	case wire.ActivateAck:
		if s.phase != PhaseCutover {
			return Output{}, s.wrongPhase(m)
		}
		if m.AppliedSeq != s.finalSeq {
			return Output{}, invalid("target live at %d, final sequence is %d", m.AppliedSeq, s.finalSeq)
		}
		s.handover(now, &out)
	case wire.Complete:
		if s.phase != PhaseCutover {
			return Output{}, s.wrongPhase(m)
		}
		// The orchestrator only says Complete after the target's
		// ActivateAck, so it stands in for an ack we lost.
		s.handover(now, &out)
	case wire.Abort:
		if s.flipped && from != s.plan.Target {
			return Output{}, fmt.Errorf("%w: only the target can release the daemon after Activate", ErrPastCutover)
		}
		s.abort(failureFromAbort(m), false, now, &out)
		// Make sure the party that did not send it knows too.
		other := s.plan.Target
		if from == s.plan.Target {
			other = s.plan.Orchestrator
		}
		out.send(abortMsg(s.header(), s.phase, failureFromAbort(m)), other)
	case wire.NotReady:
		if s.phase != PhaseTransfer {
			return Output{}, s.wrongPhase(m)
		}
		s.abort(&Failure{Reason: NotReady, Text: "target runtime not ready"}, false, now, &out)
	default:
		return Output{}, invalid("the source does not take %s", m.Kind())
	}
	return out, nil
}

func (s *Source) wrongPhase(m Message) error {
	return &PhaseError{Role: RoleSource, What: m.Kind().String(), Phase: s.phase}
}

func (s *Source) checkSender(from NodeID, k wire.Kind) error {
	p := s.plan
	switch k {
	case wire.KindNeedModule, wire.KindRestoreComplete, wire.KindReplayAck,
		wire.KindActivateAck, wire.KindNotReady:
		return checkSender(RoleSource, k, from, p.Target)
	case wire.KindCutover, wire.KindComplete:
		return checkSender(RoleSource, k, from, p.Orchestrator)
	case wire.KindAbort:
		return checkSender(RoleSource, k, from, p.Orchestrator, p.Target)
	}
	return invalid("the source does not take %s", k)
}

func (s *Source) start(from NodeID, st wire.Start, now time.Time) (Output, error) {
	var out Output
	if err := checkSender(RoleSource, st.Kind(), from, st.Orchestrator); err != nil {
		return out, err
	}
	if st.Source != s.cfg.Self {
		return out, invalid("start names source %q, this is %q", st.Source, s.cfg.Self)
	}
	if !s.started {
		s.begin(st, now, &out)
		return out, nil
	}
	if st.ID != s.id {
		if s.done {
			return out, ErrFinished
		}
		f := failure(AlreadyMigrating, "daemon %016x is in migration %d", s.plan.Origin, s.id)
		out.send(abortMsg(st.Header, PhaseSnapshot, f), from)
		return out, fmt.Errorf("%w: %s", ErrAlreadyMigrating, f.Text)
	}
	if st.Plan != s.plan {
		return out, invalid("start for a different plan")
	}
	switch {
	case st.Attempt < s.attempt:
		return out, fmt.Errorf("%w: attempt %d, current %d", ErrStaleAttempt, st.Attempt, s.attempt)
	case st.Attempt == s.attempt:
		if s.done {
			return out, ErrFinished
		}
		s.lastHeard = now
		if s.haveSnapshot {
			out.send(s.prepare(), s.plan.Orchestrator) // answer again (SPEC R-M12)
		}
		return out, nil
	}
	// A later attempt: the orchestrator gave up on ours.
	if s.handedOver {
		return out, ErrFinished
	}
	if s.flipped && !s.done {
		return out, fmt.Errorf("%w: attempt %d already sent Activate", ErrPastCutover, s.attempt)
	}
	if !s.done {
		s.abort(failure(StateFailed, "superseded by attempt %d", st.Attempt), false, now, &out)
	}
	s.begin(st, now, &out)
	return out, nil
}

func (s *Source) begin(st wire.Start, now time.Time, out *Output) {
	*s = Source{cfg: s.cfg, started: true, id: st.ID, attempt: st.Attempt, plan: st.Plan, phase: PhaseSnapshot,
		lastHeard: now, lastSent: now}
	out.do(FreezeAndBuffer{Origin: st.Origin},
		TakeSnapshot{MigrationID: st.ID, Attempt: st.Attempt, Origin: st.Origin, Target: st.Target, Seal: st.TransportIdentity})
}

func (s *Source) prepare() wire.Prepare {
	return wire.Prepare{
		Header: s.header(), Plan: s.plan, SnapshotSeq: s.snapSeq, InputSeq: s.inputSeq,
		TotalBytes: uint64(s.snapTotal), ChunkCount: uint32(max(1, (s.snapTotal+s.cfg.Limits.ChunkSize-1)/s.cfg.Limits.ChunkSize)),
		Envelope: s.envelope,
	}
}

func (s *Source) sendSnapshot(now time.Time, out *Output) {
	s.lastChunks = now
	out.send(s.prepare(), s.plan.Target, s.plan.Orchestrator)
	for _, c := range Split(s.header(), s.plan.Origin, s.snapSeq, s.snapshot, s.cfg.Limits.ChunkSize) {
		out.send(c, s.plan.Target)
	}
}

// sendEvents sends buffered events from seq on, in batches within limits.
func (s *Source) sendEvents(from uint64, now time.Time, out *Output) {
	lim := s.cfg.Limits
	i := int(from - s.inputSeq - 1)
	for i < len(s.buf) {
		var batch []Event
		bytes := 0
		for ; i < len(s.buf) && len(batch) < lim.MaxBatchEvents; i++ {
			if len(batch) > 0 && bytes+len(s.buf[i].ev.Payload) > lim.MaxBatchBytes {
				break
			}
			batch = append(batch, s.buf[i].ev)
			bytes += len(s.buf[i].ev.Payload)
		}
		out.send(wire.ReplayBatch{Header: s.header(), Events: batch}, s.plan.Target)
	}
	s.sentUpTo = max(s.sentUpTo, s.lastSeq())
	s.lastSent = now
}

func (s *Source) checkDrained(out *Output) {
	if s.phase == PhaseReplay && !s.drained && s.acked >= s.drainAt {
		s.drained = true
		out.send(wire.ReplayAck{Header: s.header(), UpTo: s.acked}, s.plan.Orchestrator)
	}
}

// Handle takes a result or event from the I/O layer.
func (s *Source) Handle(in Input, now time.Time) (Output, error) {
	var out Output
	switch in := in.(type) {
	case SnapshotTaken:
		if err := s.inputAttempt(in.Attempt, in); err != nil {
			return out, err
		}
		if s.phase != PhaseSnapshot || s.haveSnapshot {
			return out, &PhaseError{Role: RoleSource, What: inputName(in), Phase: s.phase}
		}
		switch {
		case s.plan.TransportIdentity && len(in.Envelope) == 0:
			s.abort(failure(IdentityTransportFailed, "identity transport requested but no envelope was sealed; refusing to downgrade"), true, now, &out)
			return out, nil
		case !s.plan.TransportIdentity && len(in.Envelope) > 0:
			s.abort(failure(IdentityTransportFailed, "an envelope was sealed although identity transport is off"), true, now, &out)
			return out, nil
		case len(in.Envelope) > s.cfg.Limits.Wire.MaxEnvelope:
			s.abort(failure(IdentityTransportFailed, "envelope of %d bytes over the wire limit", len(in.Envelope)), true, now, &out)
			return out, nil
		case uint64(len(in.Snapshot)) > s.cfg.Limits.MaxSnapshotBytes:
			s.abort(failure(StateFailed, "snapshot of %d bytes over the limit %d", len(in.Snapshot), s.cfg.Limits.MaxSnapshotBytes), true, now, &out)
			return out, nil
		}
		s.haveSnapshot = true
		s.snapshot, s.snapSeq, s.inputSeq, s.envelope = in.Snapshot, in.SnapshotSeq, in.InputSeq, in.Envelope
		s.snapTotal = len(in.Snapshot)
		s.sentUpTo, s.acked = s.inputSeq, s.inputSeq
		for _, k := range s.unnumbered {
			k.ev.Seq = s.lastSeq() + 1
			s.buf = append(s.buf, k)
		}
		s.unnumbered = nil
		s.phase = PhaseTransfer
		s.lastHeard = now
		s.sendSnapshot(now, &out)
	case SnapshotFailed:
		if err := s.inputAttempt(in.Attempt, in); err != nil {
			return out, err
		}
		if s.phase != PhaseSnapshot || s.haveSnapshot {
			return out, &PhaseError{Role: RoleSource, What: inputName(in), Phase: s.phase}
		}
		s.abort(AsFailure(in.Err), true, now, &out)
	case EventArrived:
		return s.event(in, now)
	case PeerDown:
		if !s.started || s.done {
			return out, nil
		}
		switch in.Node {
		case s.plan.Target:
			s.abort(failure(TargetUnavailable, "target %q declared down", in.Node), true, now, &out)
		case s.plan.Orchestrator:
			if !s.flipped && in.Node != s.cfg.Self {
				s.abort(failure(Timeout, "orchestrator %q declared down", in.Node), true, now, &out)
			}
		}
	default:
		return out, invalid("the source does not take %s", inputName(in))
	}
	return out, nil
}

func (s *Source) inputAttempt(a uint32, in Input) error {
	if !s.started {
		return &PhaseError{Role: RoleSource, What: inputName(in)}
	}
	if a != s.attempt {
		return fmt.Errorf("%w: %s for attempt %d, current %d", ErrStaleAttempt, inputName(in), a, s.attempt)
	}
	if s.done {
		return ErrFinished
	}
	return nil
}

func (s *Source) event(in EventArrived, now time.Time) (Output, error) {
	var out Output
	ev := Event{Sender: in.Sender, SenderSeq: in.SenderSeq, Payload: in.Payload, Once: in.Once}
	k := kept{ev: ev, tok: in.Token}
	switch {
	case !s.started:
		return out, &PhaseError{Role: RoleSource, What: "EventArrived"}
	case s.handedOver:
		// Stray event after the handover: the target owns the daemon.
		out.do(ForwardEvent{To: s.plan.Target, Event: ev, Token: in.Token})
		return out, nil
	case s.done:
		return out, ErrFinished
	case s.flipped:
		// Late event: forward, but keep a copy until the target is live so
		// that a target that dies first does not take it along.
		if len(s.forwarded) < s.cfg.Limits.MaxBufferedEvents {
			s.forwarded = append(s.forwarded, k)
		}
		out.do(ForwardEvent{To: s.plan.Target, Event: ev, Token: in.Token})
		return out, nil
	}
	lim := s.cfg.Limits
	if len(s.buf)+len(s.unnumbered) >= lim.MaxBufferedEvents || s.bufBytes+len(ev.Payload) > lim.MaxBufferedBytes ||
		len(ev.Payload) > lim.Wire.MaxEventPayload {
		s.unnumbered = append(s.unnumbered, k) // kept: ResumeLocal hands it back
		s.abort(failure(BufferOverflow, "%d events / %d bytes buffered", len(s.buf)+len(s.unnumbered), s.bufBytes+len(ev.Payload)), true, now, &out)
		return out, nil
	}
	s.bufBytes += len(ev.Payload)
	if !s.haveSnapshot {
		s.unnumbered = append(s.unnumbered, k)
		return out, nil
	}
	k.ev.Seq = s.lastSeq() + 1
	s.buf = append(s.buf, k)
	if s.phase == PhaseReplay {
		s.sendEvents(k.ev.Seq, now, &out)
	}
	return out, nil
}

// abort ends the attempt with the source keeping the daemon: every event
// that did not reach the daemon goes back to it, in order.
func (s *Source) abort(f *Failure, notify bool, now time.Time, out *Output) {
	ks := make([]kept, 0, len(s.buf)+len(s.unnumbered)+len(s.forwarded))
	ks = append(ks, s.buf...)
	ks = append(ks, s.unnumbered...)
	ks = append(ks, s.forwarded...)
	r := ResumeLocal{Origin: s.plan.Origin, Events: eventsOf(ks), Tokens: make([]Token, len(ks))}
	for i, k := range ks {
		r.Tokens[i] = k.tok
	}
	out.do(r)
	if notify {
		out.send(abortMsg(s.header(), s.phase, f), s.plan.Orchestrator, s.plan.Target)
	}
	s.snapshot, s.envelope, s.buf, s.unnumbered, s.forwarded = nil, nil, nil, nil, nil
	s.finish(f, now, out)
}

func (s *Source) handover(now time.Time, out *Output) {
	s.phase = PhaseComplete
	s.handedOver = true
	s.replayed = make([]Token, len(s.buf))
	for i, k := range s.buf {
		s.replayed[i] = k.tok
	}
	s.buf, s.forwarded = nil, nil
	out.do(Unsubscribe{Origin: s.plan.Origin}, Release{Origin: s.plan.Origin}, WipeKey{Origin: s.plan.Origin})
	s.finish(nil, now, out)
}

func (s *Source) finish(err error, now time.Time, out *Output) {
	s.done, s.err, s.doneAt = true, err, now
	if err == nil {
		out.do(Done{})
		return
	}
	out.do(Done{Err: err})
}

// Tick advances time: retransmission and the peer timeout.
func (s *Source) Tick(now time.Time) Output {
	var out Output
	if !s.started || s.done || s.phase == PhaseSnapshot {
		return out
	}
	t := s.cfg.Timing
	if !s.flipped && now.Sub(s.lastHeard) >= t.PeerTimeout {
		s.abort(failure(TargetUnavailable, "no word for %s in phase %s", t.PeerTimeout, s.phase), true, now, &out)
		return out
	}
	switch s.phase {
	case PhaseTransfer:
		if now.Sub(s.lastChunks) >= t.ChunkRetransmit {
			s.sendSnapshot(now, &out)
		}
	case PhaseReplay, PhaseCutover:
		if now.Sub(s.lastSent) < t.Retransmit {
			break
		}
		s.sendEvents(s.acked+1, now, &out)
		if s.phase == PhaseCutover {
			out.send(wire.Activate{Header: s.header(), FinalSeq: s.finalSeq}, s.plan.Target)
		} else if s.drained {
			out.send(wire.ReplayAck{Header: s.header(), UpTo: s.acked}, s.plan.Orchestrator)
		}
	}
	return out
}
