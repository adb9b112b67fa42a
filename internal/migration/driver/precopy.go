package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Pre-copy: before the protocol freezes a large daemon, its source ships a
// base snapshot while the daemon keeps running, then rounds of dirtied
// pages (rounds.go); the target builds an instance from the base
// (engine.Runtime.Stage) and writes each round into it. At the freeze only
// the pages that differ from what the target acknowledged travel, inside
// the protocol's ordinary snapshot transfer, so the pause no longer grows
// with the daemon's size. The decisions (what to send when, what an
// acknowledgement means, when a stage is given up) are the sans-I/O
// machines protocol.PrecopySource and protocol.PrecopyTarget; this file
// and rounds.go are their I/O layer. The protocol machines are unchanged:
// to them the delta is just a (small) snapshot.

const (
	framePrecopy    byte = 3 // a wire.SnapshotChunk of the base snapshot
	framePrecopyAck byte = 4 // id u64 | ok byte | round u32 | message (only when not ok)
	packDelta       byte = 2 // snapshot bytes: removed pages + packed delta
)

// DefaultPreCopyThreshold is the live memory above which a migration
// pre-copies; below it one transfer is quicker than two.
const DefaultPreCopyThreshold = 1 << 20

// precopyAckTimeout: a source gives up a transfer the target did not
// acknowledge in this long and migrates without a base.
const precopyAckTimeout = 30 * time.Second

// maxAckText bounds the reason a refusing target sends back.
const maxAckText = 1024

// staged is the target side of one pre-copy here: its machine, and the
// staged instance once the base is built.
type staged struct {
	from NodeID
	mach *protocol.PrecopyTarget
	s    *engine.Staged
}

type precopyAckIn struct {
	from NodeID
	ack  protocol.PrecopyAck
}

// precopy runs before the orchestrator starts; caller does not hold m.mu.
// It drives a protocol.PrecopySource to its end and returns the snapshot
// the target's stage then equals. On any failure the migration simply
// goes ahead without a base.
func (m *Migrator) precopy(ctx context.Context, id uint64, d *engine.Daemon, target NodeID, opts Options) (precopyResult, error) {
	bound, small := roundLimits(opts)
	ps, out, err := protocol.NewPrecopySource(protocol.PrecopySourceConfig{
		ID: id, Origin: d.Origin(), Target: target, Rounds: bound, DirtyBytes: small, ChunkSize: m.chunkSize(), AckTimeout: precopyAckTimeout,
	}, time.Now())
	if err != nil {
		return precopyResult{}, err
	}
	acks := make(chan precopyAckIn, 4)
	m.mu.Lock()
	m.precopyAcks[id] = acks
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.precopyAcks, id)
		m.mu.Unlock()
	}()
	drv := &precopyDriver{m: m, ps: ps, d: d, target: target}
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		if err := drv.perform(ctx, out); err != nil {
			out = ps.Cancel(err)
			continue
		}
		if done, res := ps.Done(); done {
			if !res.Staged {
				return precopyResult{}, res.Err
			}
			return precopyResult{base: drv.committed, rounds: res.Rounds, bytes: res.Bytes, converged: res.Converged}, nil
		}
		select {
		case a := <-acks:
			out, err = ps.Step(a.from, a.ack, time.Now())
			if err != nil {
				m.cfg.Logger.Debug("pre-copy ack refused", "migration", logID(id), "err", err)
			}
		case now := <-t.C:
			out = ps.Tick(now)
		case <-ctx.Done():
			out = ps.Cancel(ctx.Err())
		}
	}
}

// precopyDriver performs a PrecopySource's output for one migration.
type precopyDriver struct {
	m      *Migrator
	ps     *protocol.PrecopySource
	d      *engine.Daemon
	target NodeID
	// committed is what the target's stage equals; taken and delta what
	// the transfer in flight carries, committed once acknowledged.
	committed, taken *snapshot.Snapshot
	delta            *engine.Delta
}

// perform sends the chunks and performs the effects, feeding results back
// until the machine waits for the network. An error is the I/O layer's
// own (a frame that cannot be encoded).
func (p *precopyDriver) perform(ctx context.Context, out protocol.PrecopyOutput) error {
	for len(out.Chunks)+len(out.Effects) > 0 {
		if err := p.m.sendPrecopyChunks(ctx, p.target, out.Chunks); err != nil {
			return err
		}
		effects := out.Effects
		out = protocol.PrecopyOutput{}
		for _, e := range effects {
			var in protocol.PrecopyInput
			switch e := e.(type) {
			case protocol.TakeBase:
				in = p.takeBase(ctx)
			case protocol.TakeRound:
				in = p.takeRound(ctx, e.Round)
			case protocol.CommitRound:
				if e.Round == 0 {
					p.committed = p.taken
				} else {
					p.committed = p.delta.Merged(p.committed)
				}
				p.taken, p.delta = nil, nil
			case protocol.PrecopyFinished:
				if !e.Result.Staged {
					p.committed = nil
				}
			}
			if in == nil {
				continue
			}
			o, err := p.ps.Handle(in, time.Now())
			if err != nil {
				return err
			}
			out.Chunks = append(out.Chunks, o.Chunks...)
			out.Effects = append(out.Effects, o.Effects...)
		}
	}
	return nil
}

func (p *precopyDriver) takeBase(ctx context.Context) protocol.PrecopyInput {
	base, err := p.d.Snapshot(ctx)
	if err != nil {
		return protocol.TakeFailed{Round: 0, Err: err}
	}
	data, err := p.d.SignSnapshot(base)
	if err != nil {
		return protocol.TakeFailed{Round: 0, Err: err}
	}
	p.taken = base
	return protocol.BaseTaken{Data: p.m.pack.pack(data), Seq: base.Sequence, PageBytes: int64(len(base.Pages)) * snapshot.PageSize}
}

// sendPrecopyChunks queues pre-copy chunks to target, outside the lock and
// held to the lane's byte budget: the chunks go no faster than their
// stream takes them.
func (m *Migrator) sendPrecopyChunks(ctx context.Context, target NodeID, chunks []protocol.PrecopyChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	m.mu.Lock()
	q := m.peer(target)
	m.mu.Unlock()
	for _, c := range chunks {
		b, err := wire.Encode(c.Chunk)
		if err != nil {
			return err
		}
		typ := framePrecopy
		if c.Round > 0 {
			typ = framePrecopyRound // the round travels as Header.Attempt
		}
		if err := q.pushWait(ctx, append([]byte{typ}, b...)); err != nil {
			return err
		}
	}
	return nil
}

func (m *Migrator) chunkSize() int {
	if m.cfg.Limits.ChunkSize > 0 {
		return m.cfg.Limits.ChunkSize
	}
	return protocol.DefaultLimits().ChunkSize
}

// stagedTTL is how long a stage waits here for its migration (or a
// transfer for its next chunk). Not the linger: a short linger (tests use
// 200 ms) must not expire a base between its acknowledgement and the delta
// that needs it; the source starts the migration as soon as it has the
// acknowledgement, and gives up waiting for one after precopyAckTimeout.
const stagedTTL = time.Minute

// ErrBusy refuses a pre-copy while the node's inbound budget is in use.
var ErrBusy = errors.New("migrator: node busy with inbound migrations")

const maxStaged = 8

// receivePrecopy steps the target machine of a base chunk; caller holds
// m.mu.
func (m *Migrator) receivePrecopy(from NodeID, c wire.SnapshotChunk) error {
	return m.receivePrecopyChunk(from, protocol.PrecopyChunk{Round: 0, Chunk: c})
}

// receivePrecopyChunk steps the pre-copy's target machine (making one for
// a pre-copy not seen yet); caller holds m.mu. Every transfer is reserved
// against the node-wide inbound budget before its first chunk counts;
// past the budget the source is told at once, and migrates without a
// base.
func (m *Migrator) receivePrecopyChunk(from NodeID, c protocol.PrecopyChunk) error {
	id := c.Chunk.Header.ID
	now := time.Now()
	st := m.staged[id]
	if st == nil {
		if len(m.staged) >= maxStaged {
			err := fmt.Errorf("%w: %d pre-copies already staged", ErrBusy, maxStaged)
			if c.Chunk.Index == 0 {
				m.peer(from).push(encodePrecopyAck(protocol.PrecopyAck{ID: id, Round: c.Round, Err: err.Error()}))
			}
			return err
		}
		mach, err := protocol.NewPrecopyTarget(protocol.PrecopyTargetConfig{
			ID: id, Source: from, TTL: stagedTTL, MaxSnapshot: m.maxSnapshot(),
		}, now)
		if err != nil {
			return err
		}
		st = &staged{from: from, mach: mach}
		m.staged[id] = st
	}
	if st.from != from {
		// Refused before it can touch the pre-copy's reservation.
		return fmt.Errorf("%w: pre-copy %016x chunk from %s, its source is %s", ErrBadFrame, id, from, st.from)
	}
	key := inboundKey{id: id, pre: true}
	if n, need := st.mach.Reservation(c); need && !m.inbound.reserve(key, n) {
		err := fmt.Errorf("%w: inbound migration budget in use (%d of %d bytes)", ErrBusy, m.inbound.used, m.inbound.limit)
		m.discardOffLock(m.precopyApply(id, st, st.mach.Refuse(c, err, now)))
		return err
	}
	out, err := st.mach.Step(from, c, now)
	m.discardOffLock(m.precopyApply(id, st, out))
	if err != nil && !errors.Is(err, protocol.ErrFinished) {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	return nil
}

// precopyApply performs a PrecopyTarget's output; caller holds m.mu. It
// returns the staged instances to discard off the lock. A machine that
// ended is forgotten with its reservation.
func (m *Migrator) precopyApply(id uint64, st *staged, out protocol.PrecopyOutput) []*engine.Staged {
	for _, a := range out.Acks {
		m.peer(st.from).push(encodePrecopyAck(a))
	}
	var drop []*engine.Staged
	key := inboundKey{id: id, pre: true}
	for _, e := range out.Effects {
		switch e := e.(type) {
		case protocol.StageBase:
			m.stageAsync(id, st, e.Data)
		case protocol.AdvanceStage:
			m.advanceAsync(id, st, e.Round, e.Data)
		case protocol.DiscardStage:
			m.inbound.release(key)
			if st.s != nil {
				drop = append(drop, st.s)
				st.s = nil
			}
		}
	}
	if st.mach.Done() && m.staged[id] == st {
		delete(m.staged, id)
		m.inbound.release(key)
	}
	return drop
}

func (m *Migrator) discardOffLock(drop []*engine.Staged) {
	if len(drop) == 0 {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, s := range drop {
			s.Discard(context.Background())
		}
	}()
}

// stageAsync builds the staged instance off the lock and reports back.
// The machine emits nothing else for this pre-copy until then, so st.s is
// this goroutine's alone meanwhile.
func (m *Migrator) stageAsync(id uint64, st *staged, packed []byte) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, size, err := m.stage(ctx, st.from, packed)
		m.mu.Lock()
		if err == nil && !m.inbound.reserve(inboundKey{id: id, pre: true}, size) {
			// Staged, the base holds its unpacked size, not what travelled.
			err = fmt.Errorf("%w: a staged base of %d bytes is over the inbound migration budget (%d of %d bytes in use)",
				ErrBusy, size, m.inbound.used, m.inbound.limit)
		}
		var drop []*engine.Staged
		if err != nil && s != nil {
			drop = append(drop, s)
		} else {
			st.s = s
		}
		out, herr := st.mach.Handle(protocol.StageDone{Round: 0, Size: size, Err: err}, time.Now())
		if herr != nil {
			m.cfg.Logger.Debug("pre-copy stage result refused", "migration", logID(id), "err", herr)
		}
		drop = append(drop, m.precopyApply(id, st, out)...)
		m.mu.Unlock()
		for _, s := range drop {
			s.Discard(ctx)
		}
	}()
}

// takeStaged hands the stage of migration id to its restore and releases
// its reservation: from here on it is the restore's memory. It is nil when
// nothing usable is staged (none, or a transfer still being staged: that
// is then dropped). Caller holds m.mu.
func (m *Migrator) takeStaged(id uint64) *staged {
	st := m.staged[id]
	if st == nil {
		return nil
	}
	round, _ := st.mach.Staged()
	ok, out := st.mach.Take(round, time.Now())
	if ok {
		delete(m.staged, id)
		m.inbound.release(inboundKey{id: id, pre: true})
		return st
	}
	m.discardOffLock(m.precopyApply(id, st, out))
	return nil
}

// expirePrecopy gives up transfers whose source went quiet and stages no
// migration used within stagedTTL; it returns the staged instances to
// discard off the lock. Caller holds m.mu.
func (m *Migrator) expirePrecopy(now time.Time) []*engine.Staged {
	var drop []*engine.Staged
	for id, st := range m.staged {
		drop = append(drop, m.precopyApply(id, st, st.mach.Tick(now))...)
	}
	return drop
}

func (m *Migrator) maxSnapshot() uint64 {
	if n := m.cfg.Limits.MaxSnapshotBytes; n > 0 {
		return n
	}
	return protocol.DefaultLimits().MaxSnapshotBytes
}

// stage builds an instance from a base; it also returns the base's
// unpacked size, which is what the staged instance holds.
func (m *Migrator) stage(ctx context.Context, from NodeID, packed []byte) (*engine.Staged, uint64, error) {
	raw, err := m.pack.unpack(packed)
	if err != nil {
		return nil, 0, err
	}
	base, err := snapshot.Decode(raw, snapshot.DefaultLimits())
	if err != nil {
		return nil, 0, err
	}
	digest := string(engine.DigestFromBytes(base.ModuleDigest))
	if _, err := m.cfg.Runtime.Kind(digest); err != nil {
		b, err := m.cfg.Mesh.FetchModule(ctx, from, digest)
		if err != nil {
			return nil, 0, err
		}
		if _, err := m.cfg.Runtime.RegisterModule(ctx, b, ""); err != nil {
			return nil, 0, err
		}
	}
	s, err := m.cfg.Runtime.Stage(ctx, digest, base, engine.SpawnOptions{})
	return s, uint64(len(raw)), err
}

func encodePrecopyAck(a protocol.PrecopyAck) []byte {
	b := binary.LittleEndian.AppendUint64([]byte{framePrecopyAck}, a.ID)
	if a.Err == "" {
		return binary.LittleEndian.AppendUint32(append(b, 1), a.Round)
	}
	msg := a.Err
	if len(msg) > maxAckText {
		msg = msg[:maxAckText]
	}
	return append(binary.LittleEndian.AppendUint32(append(b, 0), a.Round), msg...)
}

// decodePrecopyAck reads an acknowledgement after its frame type: an ok
// one carries nothing more, a refusal a reason of 1 to maxAckText bytes.
func decodePrecopyAck(b []byte) (protocol.PrecopyAck, error) {
	if len(b) < 13 {
		return protocol.PrecopyAck{}, fmt.Errorf("%w: short pre-copy ack", ErrBadFrame)
	}
	a := protocol.PrecopyAck{ID: binary.LittleEndian.Uint64(b), Round: binary.LittleEndian.Uint32(b[9:])}
	msg := b[13:]
	switch {
	case b[8] == 1 && len(msg) == 0:
	case b[8] == 0 && len(msg) > 0 && len(msg) <= maxAckText:
		a.Err = string(msg)
	default:
		return protocol.PrecopyAck{}, fmt.Errorf("%w: pre-copy ack with ok=%d and %d bytes of reason", ErrBadFrame, b[8], len(msg))
	}
	return a, nil
}

// receivePrecopyAck hands an acknowledgement to the pre-copy it names, if
// it still runs here; its machine checks the sender and the round.
func (m *Migrator) receivePrecopyAck(from NodeID, b []byte) error {
	a, err := decodePrecopyAck(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.precopyAcks[a.ID]; ch != nil {
		select {
		case ch <- precopyAckIn{from: from, ack: a}:
		default:
		}
	}
	return nil
}

// encodeDelta: packDelta | removed count u32 | removed u32… | packed snapshot.
func (m *Migrator) encodeDelta(removed []uint32, encoded []byte) []byte {
	b := []byte{packDelta}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(removed)))
	for _, r := range removed {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	return append(b, m.pack.pack(encoded)...)
}

func (m *Migrator) decodeDelta(b []byte) ([]uint32, []byte, error) {
	if len(b) == 0 || b[0] != packDelta {
		return nil, nil, fmt.Errorf("%w: not a delta snapshot", ErrBadFrame)
	}
	rd := reader{b: b[1:]}
	n := rd.u32()
	if rd.err == nil && uint64(n)*4 > uint64(len(rd.b)) {
		return nil, nil, fmt.Errorf("%w: %d removed pages in %d bytes", ErrBadFrame, n, len(rd.b))
	}
	removed := make([]uint32, 0, n)
	for i := uint32(0); i < n && rd.err == nil; i++ {
		p := rd.u32()
		if len(removed) > 0 && p <= removed[len(removed)-1] {
			return nil, nil, fmt.Errorf("%w: removed pages out of order", ErrBadFrame)
		}
		removed = append(removed, p)
	}
	if rd.err != nil {
		return nil, nil, rd.err
	}
	raw, err := m.pack.unpack(rd.b)
	return removed, raw, err
}

// stagedCount is how many pre-copies here hold a staged instance; the
// rest of m.staged are being received. Caller holds m.mu.
func (m *Migrator) stagedCount() int {
	n := 0
	for _, st := range m.staged {
		if st.s != nil {
			n++
		}
	}
	return n
}
