package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Iterative pre-copy. A base takes a while to travel, and a busy daemon
// dirties pages meanwhile; all of them would travel at the freeze, inside
// the pause. So after the base the source sends rounds while the daemon
// keeps running: each round is the pages dirtied since the previous one,
// written into the target's staged copy. When rounds stop is
// protocol.PrecopySource's decision (a small dirty set, one that stopped
// shrinking, or the bound); this file takes and writes them.

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

// roundLimits is the machine's bound on rounds (Options: 0 the default,
// negative none) and its dirty threshold.
func roundLimits(opts Options) (int, int64) {
	n, small := opts.PreCopyRounds, opts.PreCopyDirtyBytes
	if n == 0 {
		n = DefaultPreCopyRounds
	}
	if small <= 0 {
		small = DefaultPreCopyDirtyBytes
	}
	return max(n, 0), small
}

// takeRound computes the pages dirtied since the committed snapshot; it
// encodes them only when the machine would send them. Under the daemon's
// lock for one pass over its memory; the encoding runs outside it.
func (p *precopyDriver) takeRound(ctx context.Context, round uint32) protocol.PrecopyInput {
	delta, err := p.d.SnapshotDelta(ctx, p.committed)
	if err != nil {
		p.m.cfg.Logger.Info("pre-copy round not taken", "daemon", p.d.ID(), "err", err)
		return protocol.TakeFailed{Round: round, Err: err}
	}
	in := protocol.RoundTaken{Round: round, Seq: delta.Snap.Sequence, DirtyBytes: delta.DirtyBytes()}
	if !p.ps.WouldSend(in.DirtyBytes) {
		return in
	}
	data, err := p.d.SignSnapshot(delta.Snap)
	if err != nil {
		return protocol.TakeFailed{Round: round, Err: err}
	}
	in.Data = p.m.encodeDelta(delta.Removed, data)
	p.delta = delta
	return in
}

// receiveRound steps the target machine of a round chunk; caller holds
// m.mu.
func (m *Migrator) receiveRound(from NodeID, c wire.SnapshotChunk) error {
	if c.Header.Attempt == 0 {
		return fmt.Errorf("%w: pre-copy round 0 in a round frame", ErrBadFrame)
	}
	return m.receivePrecopyChunk(from, protocol.PrecopyChunk{Round: c.Header.Attempt, Chunk: c})
}

// advanceAsync writes a round into the stage off the lock and reports
// back; as with stageAsync, st.s is this goroutine's alone meanwhile.
func (m *Migrator) advanceAsync(id uint64, st *staged, round uint32, packed []byte) {
	s := st.s
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := m.advance(ctx, s, packed)
		m.mu.Lock()
		var size uint64
		var drop []*engine.Staged
		if err != nil {
			st.s = nil // advance discarded it
		} else {
			size = uint64(len(st.s.Base().Pages)) * snapshot.PageSize
			if !m.inbound.reserve(inboundKey{id: id, pre: true}, size) {
				err = fmt.Errorf("%w: a staged copy of %d bytes is over the inbound migration budget (%d of %d bytes in use)",
					ErrBusy, size, m.inbound.used, m.inbound.limit)
				drop, st.s = append(drop, st.s), nil
			}
		}
		out, herr := st.mach.Handle(protocol.StageDone{Round: round, Size: size, Err: err}, time.Now())
		if herr != nil {
			m.cfg.Logger.Debug("pre-copy round result refused", "migration", logID(id), "err", herr)
		}
		drop = append(drop, m.precopyApply(id, st, out)...)
		m.mu.Unlock()
		for _, d := range drop {
			d.Discard(ctx)
		}
	}()
}

// advance decodes a round and writes it into the staged copy (which is
// discarded on failure); it runs off m.mu.
func (m *Migrator) advance(ctx context.Context, s *engine.Staged, packed []byte) error {
	if s == nil {
		return fmt.Errorf("%w: nothing staged to advance", ErrBadFrame)
	}
	removed, raw, err := m.decodeDelta(packed)
	if err == nil {
		var snap *snapshot.Snapshot
		if snap, err = snapshot.Decode(raw, snapshot.DefaultLimits()); err == nil {
			return s.Advance(ctx, &engine.Delta{Snap: snap, Removed: removed})
		}
	}
	s.Discard(ctx)
	return err
}
