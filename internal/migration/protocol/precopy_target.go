package protocol

import (
	"fmt"
	"time"
)

// PrecopyTargetConfig configures the target side of one pre-copy.
type PrecopyTargetConfig struct {
	ID     uint64
	Source NodeID // the only node whose chunks count
	// TTL: a stage (or a transfer) left alone this long is discarded: its
	// source gave up, crashed, or its migration never came.
	TTL time.Duration
	// MaxSnapshot bounds one transfer.
	MaxSnapshot uint64
}

type ptState uint8

const (
	ptIdle      ptState = iota + 1 // nothing received yet, or a stage at round have
	ptReceiving                    // chunks of round recv come in
	ptStaging                      // the I/O layer builds or advances the stage
	ptDone
)

// PrecopyTarget is the target side of one pre-copy: it reassembles each
// transfer, asks the I/O layer to stage it, acknowledges it, and decides
// when the stage is discarded. Its stage is always either nothing or the
// base plus every round up to the one it acknowledged last.
type PrecopyTarget struct {
	cfg    PrecopyTargetConfig
	state  ptState
	staged bool   // a stage exists (the base at least was written)
	have   uint32 // its round, when staged
	size   uint64 // what the stage holds
	recv   uint32 // the round being received or staged
	asm    *Reassembler
	last   time.Time
	// discardAfter: the machine ended while a stage operation ran; the
	// stage is dropped once the I/O layer reports it back.
	discardAfter bool
	err          error // why it ended, nil when the stage was taken
	taken        bool
}

// NewPrecopyTarget is the machine for the first chunk of a pre-copy the
// I/O layer has no machine for.
func NewPrecopyTarget(cfg PrecopyTargetConfig, now time.Time) (*PrecopyTarget, error) {
	if cfg.TTL <= 0 || cfg.Source == "" {
		return nil, fmt.Errorf("%w: pre-copy target %+v", ErrConfig, cfg)
	}
	if cfg.MaxSnapshot == 0 {
		cfg.MaxSnapshot = DefaultLimits().MaxSnapshotBytes
	}
	return &PrecopyTarget{cfg: cfg, state: ptIdle, last: now}, nil
}

// Done reports whether the machine ended: its stage was taken, refused,
// discarded or expired. A finished machine holds nothing.
func (t *PrecopyTarget) Done() bool { return t.state == ptDone && !t.discardAfter }

// Staged reports the round the stage holds, when it holds one and no
// stage operation runs.
func (t *PrecopyTarget) Staged() (uint32, bool) {
	return t.have, t.state == ptIdle && t.staged
}

// Reservation says whether c starts a transfer, and then how many bytes
// the I/O layer must reserve for the stage and the transfer together
// before it steps c; if it cannot, it calls Refuse instead.
func (t *PrecopyTarget) Reservation(c PrecopyChunk) (uint64, bool) {
	if t.state != ptIdle || !t.next(c.Round) {
		return 0, false
	}
	// The announced size comes from the network: past the limit it is
	// refused by Step anyway, and must not wrap the sum.
	n := min(c.Chunk.TotalBytes, t.cfg.MaxSnapshot+1)
	if c.Round == 0 {
		return n, true
	}
	return t.size + n, true
}

// next: round r is the one transfer the source may send now.
func (t *PrecopyTarget) next(r uint32) bool {
	if !t.staged {
		return r == 0
	}
	return r == t.have+1
}

// Refuse answers a transfer the I/O layer could not reserve for: the
// source is told, and the stage is given up with it.
func (t *PrecopyTarget) Refuse(c PrecopyChunk, err error, now time.Time) PrecopyOutput {
	var out PrecopyOutput
	if t.state == ptDone {
		return out
	}
	t.fail(c.Round, err, &out)
	return out
}

// Step takes one chunk.
func (t *PrecopyTarget) Step(from NodeID, c PrecopyChunk, now time.Time) (PrecopyOutput, error) {
	var out PrecopyOutput
	r := c.Round
	switch {
	case from != t.cfg.Source:
		return out, &SenderError{Role: RoleTarget, From: from, Want: []NodeID{t.cfg.Source}}
	case c.Chunk.Header.ID != t.cfg.ID:
		return out, fmt.Errorf("%w: pre-copy chunk of %016x", ErrUnknownMigration, c.Chunk.Header.ID)
	case t.state == ptDone:
		if t.err != nil && c.Chunk.Index == 0 {
			// Said once already; a retransmitted start hears it again.
			out.Acks = append(out.Acks, PrecopyAck{ID: t.cfg.ID, Round: r, Err: t.err.Error()})
		}
		return out, ErrFinished
	case t.staged && r <= t.have:
		// A duplicate of a transfer already staged: its acknowledgement
		// may have been lost. It changes nothing.
		if c.Chunk.Index == 0 && r == t.have && t.state == ptIdle {
			out.Acks = append(out.Acks, PrecopyAck{ID: t.cfg.ID, Round: r})
		}
		return out, nil
	case t.state == ptStaging && r == t.recv:
		return out, nil // the acknowledgement follows the stage operation
	case t.state == ptReceiving && r == t.recv:
	case t.state == ptIdle && t.next(r):
		t.state, t.recv = ptReceiving, r
		t.asm = NewReassembler(t.cfg.MaxSnapshot, t.cfg.MaxSnapshot)
	case !t.staged && r > 0:
		t.fail(r, fmt.Errorf("%w: %016x round %d", ErrNoStagedBase, t.cfg.ID, r), &out)
		return out, ErrNoStagedBase
	default:
		err := fmt.Errorf("%w: %016x round %d while at round %d", ErrPrecopyOrder, t.cfg.ID, r, t.have)
		t.fail(r, err, &out)
		return out, err
	}
	t.last = now
	ch := c.Chunk
	ch.Origin = t.cfg.ID
	err := t.asm.Begin(t.cfg.ID, ch.SnapshotSeq, ch.Count, ch.TotalBytes)
	var data []byte
	var done bool
	if err == nil {
		data, done, err = t.asm.Add(ch)
	}
	if err != nil {
		t.fail(r, err, &out)
		return out, err
	}
	if !done {
		return out, nil
	}
	t.asm = nil
	t.state = ptStaging
	if r == 0 {
		out.Effects = append(out.Effects, StageBase{ID: t.cfg.ID, Data: data})
	} else {
		out.Effects = append(out.Effects, AdvanceStage{ID: t.cfg.ID, Round: r, Data: data})
	}
	return out, nil
}

// Handle takes the result of StageBase or AdvanceStage.
func (t *PrecopyTarget) Handle(in StageDone, now time.Time) (PrecopyOutput, error) {
	var out PrecopyOutput
	switch {
	case t.discardAfter:
		// Ended meanwhile: what the operation built goes now.
		t.discardAfter = false
		out.Effects = append(out.Effects, DiscardStage{ID: t.cfg.ID})
		return out, nil
	case t.state != ptStaging || in.Round != t.recv:
		return out, fmt.Errorf("%w: stage of round %d done while not staging it", ErrWrongPhase, in.Round)
	}
	t.last = now
	if in.Err != nil {
		// A failed advance leaves the stage half written: it goes too.
		t.state = ptIdle
		t.fail(in.Round, in.Err, &out)
		return out, nil
	}
	t.state, t.staged, t.have, t.size = ptIdle, true, in.Round, in.Size
	out.Acks = append(out.Acks, PrecopyAck{ID: t.cfg.ID, Round: in.Round})
	return out, nil
}

// Tick discards a stage or transfer left alone longer than the TTL.
func (t *PrecopyTarget) Tick(now time.Time) PrecopyOutput {
	var out PrecopyOutput
	if t.state == ptDone || t.state == ptStaging || now.Sub(t.last) <= t.cfg.TTL {
		return out
	}
	t.end(fmt.Errorf("%w: after %v", ErrPrecopyExpired, t.cfg.TTL), &out)
	return out
}

// Take hands the stage to the restore of a delta snapshot: true when it
// holds a stage at round and no operation runs; the I/O layer then owns
// the staged instance (and its reservation ends). Otherwise whatever is
// held is discarded, and the delta cannot be applied.
func (t *PrecopyTarget) Take(round uint32, now time.Time) (bool, PrecopyOutput) {
	var out PrecopyOutput
	if t.state == ptIdle && t.staged && t.have == round {
		t.state, t.taken = ptDone, true
		return true, out
	}
	if t.state != ptDone {
		t.end(fmt.Errorf("%w: taken at round %d while at round %d", ErrPrecopyOrder, round, t.have), &out)
	}
	return false, out
}

// Drop gives the stage up: the migration restores a full snapshot, or the
// I/O layer forgets the pre-copy.
func (t *PrecopyTarget) Drop(err error, now time.Time) PrecopyOutput {
	var out PrecopyOutput
	if t.state != ptDone {
		if err == nil {
			err = fmt.Errorf("%w: dropped", ErrPrecopy)
		}
		t.end(err, &out)
	}
	return out
}

// fail tells the source and ends the machine.
func (t *PrecopyTarget) fail(round uint32, err error, out *PrecopyOutput) {
	out.Acks = append(out.Acks, PrecopyAck{ID: t.cfg.ID, Round: round, Err: err.Error()})
	t.end(err, out)
}

func (t *PrecopyTarget) end(err error, out *PrecopyOutput) {
	if t.state == ptStaging {
		t.discardAfter = true
	} else {
		out.Effects = append(out.Effects, DiscardStage{ID: t.cfg.ID})
	}
	t.state, t.err, t.asm = ptDone, err, nil
}
