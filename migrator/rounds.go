package migrator

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/host/snapshot"
	"github.com/wasmesh/wasmesh/migration"
	"github.com/wasmesh/wasmesh/migration/wire"
)

// Iterative pre-copy. A base takes a while to travel, and a busy daemon
// dirties pages meanwhile; all of them would travel at the freeze, inside
// the pause. So after the base the source sends rounds while the daemon
// keeps running: each round is the pages dirtied since the previous one,
// written into the target's staged copy. Rounds stop when one finds the
// dirty set small (the freeze will carry about that much), when it stops
// shrinking (the daemon dirties pages as fast as they travel: more rounds
// only resend them), or at the bound. The state machines never see a round.

const framePrecopyRound byte = 5 // a wire.SnapshotChunk of a round; Header.Attempt is its number (1, 2, …)

// Defaults of Options.PreCopyRounds and Options.PreCopyDirtyBytes.
const (
	DefaultPreCopyRounds     = 8
	DefaultPreCopyDirtyBytes = 256 << 10
)

// precopyResult is what a pre-copy achieved: base is what the target's
// staged copy equals (the merge of the base and every round), nil if
// nothing was staged.
type precopyResult struct {
	base      *snapshot.Snapshot
	rounds    int
	bytes     []int
	converged bool
}

func (p precopyResult) record(s *Stats) {
	s.Rounds, s.PreCopyBytes, s.Converged = p.rounds, p.bytes, p.converged
}

func roundLimits(opts Options) (int, int64) {
	n, small := opts.PreCopyRounds, opts.PreCopyDirtyBytes
	if n == 0 {
		n = DefaultPreCopyRounds
	}
	if small <= 0 {
		small = DefaultPreCopyDirtyBytes
	}
	return n, small
}

// rounds sends rounds after the base (res) was acknowledged. A round the
// target did not acknowledge leaves its staged copy in doubt, so the
// migration then goes ahead without a base; a round that cannot be taken
// leaves the staged copy as it was, and the freeze goes ahead from there.
func (m *Migrator) rounds(ctx context.Context, id uint64, d *host.Daemon, target NodeID, opts Options, ack chan error, res precopyResult) (precopyResult, error) {
	bound, small := roundLimits(opts)
	// The base is round 0: a first round that finds as much dirtied as
	// the base carried (a daemon that rewrites its memory faster than it
	// travels) is not sent either.
	prev := int64(len(res.base.Pages)) * snapshot.PageSize
	for round := 1; round <= bound; round++ {
		// Under the daemon's lock for one pass over its memory; the
		// encoding and the transfer run outside it.
		delta, err := d.SnapshotDelta(ctx, res.base)
		if err != nil {
			m.cfg.Logger.Info("pre-copy round not taken", "daemon", d.ID(), "err", err)
			return res, nil
		}
		dirty := delta.DirtyBytes()
		if dirty <= small {
			res.converged = true
			return res, nil
		}
		if dirty >= prev {
			return res, nil
		}
		data, err := snapshot.Encode(delta.Snap, d.Identity())
		if err != nil {
			return res, nil
		}
		packed := m.encodeDelta(delta.Removed, data)
		if err := m.sendPrecopy(ctx, framePrecopyRound, wire.Header{ID: id, Attempt: uint32(round)}, d.Origin(), delta.Snap.Sequence, packed, target, ack); err != nil {
			return precopyResult{}, fmt.Errorf("pre-copy round %d: %w", round, err)
		}
		res.base = delta.Merged(res.base)
		res.rounds++
		res.bytes = append(res.bytes, len(packed))
		prev = dirty
	}
	return res, nil
}

// receiveRound reassembles a round on the target and writes it into the
// staged copy; caller holds m.mu. The round's bytes are reserved against
// the inbound budget on top of the staged copy while they are held.
func (m *Migrator) receiveRound(from NodeID, c wire.SnapshotChunk) error {
	id := c.Header.ID
	st := m.staged[id]
	if st == nil || st.from != from {
		if c.Index == 0 {
			m.peer(from).push(precopyAck(id, fmt.Errorf("%w: pre-copy round of %016x without a staged base", ErrBadFrame, id)))
		}
		return fmt.Errorf("%w: pre-copy round of %016x without a staged base from %s", ErrBadFrame, id, from)
	}
	key := inboundKey{id: id, pre: true}
	if st.in == nil {
		if c.Index != 0 || c.Header.Attempt != st.round+1 {
			return fmt.Errorf("%w: pre-copy round %d chunk %d of %016x out of order (staged round %d)",
				ErrBadFrame, c.Header.Attempt, c.Index, id, st.round)
		}
		if !m.inbound.reserve(key, st.size+c.TotalBytes) {
			// The reservation of the staged copy went with the refusal:
			// it is given up, and the source migrates without it.
			m.takeStaged(id)
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				st.s.Discard(context.Background())
			}()
			m.peer(from).push(precopyAck(id, fmt.Errorf("%w: inbound migration budget in use (%d of %d bytes)", ErrBusy, m.inbound.used, m.inbound.limit)))
			return nil
		}
		lim := m.maxSnapshot()
		st.in = &precopyIn{asm: migration.NewReassembler(lim, lim)}
	}
	st.at = time.Now()
	if c.Header.Attempt != st.round+1 {
		return fmt.Errorf("%w: pre-copy round %d chunk while round %d is received", ErrBadFrame, c.Header.Attempt, st.round+1)
	}
	asm := st.in.asm
	err := asm.Begin(id, c.SnapshotSeq, c.Count, c.TotalBytes)
	var packed []byte
	var done bool
	if err == nil {
		packed, done, err = asm.Add(wire.SnapshotChunk{Header: c.Header, Origin: id, SnapshotSeq: c.SnapshotSeq,
			Index: c.Index, Count: c.Count, TotalBytes: c.TotalBytes, Data: c.Data})
	}
	if err != nil {
		// The source waits for an answer to this round: it gets one, and
		// migrates without the staged copy (the rest of the round is
		// refused as it comes, for want of its start).
		st.in = nil
		m.inbound.reserve(key, st.size)
		m.peer(from).push(precopyAck(id, err))
		return err
	}
	if !done {
		return nil
	}
	st.in = nil
	// Out of the map while it is written: no restore or expiry may take it
	// meanwhile. The reservation stays.
	delete(m.staged, id)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := m.advance(ctx, st, packed)
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case err != nil:
			m.inbound.release(key)
		case m.staged[id] != nil:
			// Cannot happen with an honest source: bases and rounds of one
			// migration come one at a time.
			err = fmt.Errorf("%w: pre-copy %016x staged twice", ErrBadFrame, id)
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				st.s.Discard(context.Background())
			}()
		default:
			st.round++
			st.at = time.Now()
			st.size = uint64(len(st.s.Base().Pages)) * snapshot.PageSize
			m.inbound.reserve(key, st.size)
			m.staged[id] = st
		}
		m.peer(st.from).push(precopyAck(id, err))
	}()
	return nil
}

// advance decodes a round and writes it into the staged copy (which is
// discarded on failure); it runs off m.mu.
func (m *Migrator) advance(ctx context.Context, st *staged, packed []byte) error {
	removed, raw, err := m.decodeDelta(packed)
	if err == nil {
		var snap *snapshot.Snapshot
		if snap, err = snapshot.Decode(raw, snapshot.DefaultLimits()); err == nil {
			return st.s.Advance(ctx, &host.Delta{Snap: snap, Removed: removed})
		}
	}
	st.s.Discard(ctx)
	return err
}
