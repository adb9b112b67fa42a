package protocol

import (
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// OrchestratorConfig starts one migration.
type OrchestratorConfig struct {
	ID   uint64    // migration id; the caller picks it at random
	Plan wire.Plan // Plan.Orchestrator is this node
	// Retry is the NotReady retry policy (SPEC R-M8).
	Retry RetryPolicy
	// Deadline, if set, aborts the migration with Timeout (a handle's
	// wait-with-timeout). After cutover nothing can be undone: the result
	// is Timeout but the handover may still finish.
	Deadline time.Time
	Timing   Timing
}

// Orchestrator drives one migration from any node (SPEC R-M2): it starts
// each attempt, tells the source when to cut over, retries NotReady with
// backoff and reports the outcome.
type Orchestrator struct {
	cfg           OrchestratorConfig
	attempt       uint32
	phase         Phase
	retryDeadline time.Time
	retryAt       time.Time // set while waiting to start the next attempt
	lastSent      time.Time
	lastHeard     time.Time
	done          bool
	err           error
}

// NewOrchestrator validates cfg and returns the machine with the first Start.
func NewOrchestrator(cfg OrchestratorConfig, now time.Time) (*Orchestrator, Output, error) {
	cfg.Retry = cfg.Retry.withDefaults()
	cfg.Timing = cfg.Timing.withDefaults()
	start := wire.Start{Header: wire.Header{ID: cfg.ID, Attempt: 1}, Plan: cfg.Plan}
	if err := wire.Validate(start, wire.DefaultLimits()); err != nil {
		return nil, Output{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	o := &Orchestrator{cfg: cfg, retryDeadline: now.Add(cfg.Retry.Budget)}
	var out Output
	o.startAttempt(now, &out)
	return o, out, nil
}

// Phase is the current phase; PhaseSnapshot while waiting to retry.
func (o *Orchestrator) Phase() Phase { return o.phase }

// Attempt is the current attempt number, from 1.
func (o *Orchestrator) Attempt() int { return int(o.attempt) }

// Result reports whether the migration finished and how: err is nil on
// success, otherwise a *Failure.
func (o *Orchestrator) Result() (done bool, err error) { return o.done, o.err }

func (o *Orchestrator) header() wire.Header { return wire.Header{ID: o.cfg.ID, Attempt: o.attempt} }

func (o *Orchestrator) startAttempt(now time.Time, out *Output) {
	o.attempt++
	o.phase = PhaseSnapshot
	o.retryAt = time.Time{}
	o.lastSent, o.lastHeard = now, now
	out.send(wire.Start{Header: o.header(), Plan: o.cfg.Plan}, o.cfg.Plan.Source)
}

// Step takes a message from an authenticated peer.
func (o *Orchestrator) Step(from NodeID, m Message, now time.Time) (Output, error) {
	var out Output
	if m == nil {
		return out, invalid("nil message")
	}
	p := o.cfg.Plan
	if o.done {
		// A target that lost our Complete keeps resending ActivateAck's
		// trigger; answer it again rather than leave it waiting.
		if a, ok := m.(wire.ActivateAck); ok && o.err == nil && from == p.Target && a.Hdr() == o.header() {
			out.send(wire.Complete{Header: o.header()}, p.Source, p.Target)
			return out, nil
		}
		return out, ErrFinished
	}
	if err := checkHeader(m.Hdr(), o.cfg.ID, o.attempt); err != nil {
		return out, err
	}
	if !o.retryAt.IsZero() {
		return out, fmt.Errorf("%w: attempt %d already failed", ErrStaleAttempt, o.attempt)
	}
	if err := o.checkSender(from, m.Kind()); err != nil {
		return out, err
	}
	o.lastHeard = now
	switch m := m.(type) {
	case wire.Prepare:
		if m.Plan != p {
			return out, invalid("prepare for a different plan")
		}
		if o.phase == PhaseSnapshot {
			o.phase = PhaseTransfer
		}
	case wire.RestoreComplete:
		if o.phase <= PhaseRestore {
			o.phase = PhaseReplay
		}
	case wire.ReplayAck:
		// The source reports that the target drained the backlog, which
		// implies every earlier phase completed even if those reports were
		// lost on the way here.
		if o.phase <= PhaseReplay {
			o.phase = PhaseCutover
			o.lastSent = now
			out.send(wire.Cutover{Header: o.header()}, p.Source)
		}
	case wire.ActivateAck:
		if o.phase != PhaseCutover {
			return Output{}, &PhaseError{Role: RoleOrchestrator, What: m.Kind().String(), Phase: o.phase}
		}
		o.phase = PhaseComplete
		out.send(wire.Complete{Header: o.header()}, p.Source, p.Target)
		o.finish(nil, &out)
	case wire.NotReady:
		if o.phase >= PhaseReplay {
			return Output{}, &PhaseError{Role: RoleOrchestrator, What: m.Kind().String(), Phase: o.phase}
		}
		o.attemptFailed(&Failure{Reason: NotReady, Text: "target runtime not ready"}, now, &out)
	case wire.Abort:
		o.attemptFailed(failureFromAbort(m), now, &out)
	}
	return out, nil
}

func (o *Orchestrator) checkSender(from NodeID, k wire.Kind) error {
	p := o.cfg.Plan
	switch k {
	case wire.KindPrepare, wire.KindReplayAck:
		return checkSender(RoleOrchestrator, k, from, p.Source)
	case wire.KindRestoreComplete, wire.KindActivateAck, wire.KindNotReady:
		return checkSender(RoleOrchestrator, k, from, p.Target)
	case wire.KindAbort:
		return checkSender(RoleOrchestrator, k, from, p.Source, p.Target)
	}
	return invalid("the orchestrator does not take %s", k)
}

// attemptFailed ends the current attempt: NotReady schedules a retry from
// phase 0 while the budget lasts, anything else ends the migration.
func (o *Orchestrator) attemptFailed(f *Failure, now time.Time, out *Output) {
	p := o.cfg.Plan
	// Tell both parties even if one of them told us: the other may not know,
	// and a source must not stay frozen waiting for a dead attempt.
	out.send(abortMsg(o.header(), o.phase, f), p.Source, p.Target)
	if !f.Retriable() || o.cfg.Retry.Disabled {
		o.finish(f, out)
		return
	}
	next := now.Add(o.cfg.Retry.Backoff(int(o.attempt)))
	if next.After(o.retryDeadline) {
		o.finish(&Failure{Reason: NotReadyTimeout, Attempts: int(o.attempt),
			Text: fmt.Sprintf("target not ready within %s", o.cfg.Retry.Budget)}, out)
		return
	}
	o.retryAt = next
	o.phase = PhaseSnapshot
}

func (o *Orchestrator) finish(err error, out *Output) {
	o.done = true
	if err != nil {
		o.err = err
	}
	out.do(Done{Err: o.err})
}

// Tick advances time: retries, deadline, liveness and retransmission.
func (o *Orchestrator) Tick(now time.Time) Output {
	var out Output
	if o.done {
		return out
	}
	p := o.cfg.Plan
	waiting := !o.retryAt.IsZero()
	if !o.cfg.Deadline.IsZero() && !now.Before(o.cfg.Deadline) {
		if o.phase >= PhaseCutover && !waiting {
			o.finish(failure(Timeout, "deadline passed after cutover; the handover may still complete"), &out)
			return out
		}
		f := failure(Timeout, "deadline passed in phase %s", o.phase)
		out.send(abortMsg(o.header(), o.phase, f), p.Source, p.Target)
		o.finish(f, &out)
		return out
	}
	if waiting {
		if !now.Before(o.retryAt) {
			o.startAttempt(now, &out)
		}
		return out
	}
	if o.phase < PhaseCutover && now.Sub(o.lastHeard) >= o.cfg.Timing.PeerTimeout {
		f := failure(Timeout, "no word from source or target for %s in phase %s", o.cfg.Timing.PeerTimeout, o.phase)
		out.send(abortMsg(o.header(), o.phase, f), p.Source, p.Target)
		o.finish(f, &out)
		return out
	}
	if o.phase == PhaseCutover && now.Sub(o.lastHeard) >= o.cfg.Timing.CutoverTimeout {
		// Source and target decide the handover between them; nothing to
		// abort, only a wait to end.
		o.finish(failure(Timeout, "no word from source or target for %s after cutover; the handover may have completed", o.cfg.Timing.CutoverTimeout), &out)
		return out
	}
	if now.Sub(o.lastSent) >= o.cfg.Timing.Retransmit {
		switch o.phase {
		case PhaseSnapshot:
			o.lastSent = now
			out.send(wire.Start{Header: o.header(), Plan: p}, p.Source)
		case PhaseCutover:
			o.lastSent = now
			out.send(wire.Cutover{Header: o.header()}, p.Source)
		}
	}
	return out
}

// Cancel aborts the migration with Cancelled (SPEC R-M9). After cutover was
// ordered it refuses with ErrPastCutover: the handover cannot be undone.
func (o *Orchestrator) Cancel(now time.Time) (Output, error) {
	var out Output
	if o.done {
		return out, ErrFinished
	}
	if o.phase >= PhaseCutover && o.retryAt.IsZero() {
		return out, ErrPastCutover
	}
	f := failure(Cancelled, "cancelled in phase %s", o.phase)
	out.send(abortMsg(o.header(), o.phase, f), o.cfg.Plan.Source, o.cfg.Plan.Target)
	o.finish(f, &out)
	return out, nil
}
