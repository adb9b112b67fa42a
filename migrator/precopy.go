package migrator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/host/snapshot"
	"github.com/wasmesh/wasmesh/migration"
	"github.com/wasmesh/wasmesh/migration/wire"
)

// Pre-copy: before the protocol freezes a large daemon, its source ships a
// base snapshot while the daemon keeps running; the target builds an
// instance from it (host.Runtime.Stage). At the freeze only the pages that
// differ from the base travel, inside the protocol's ordinary snapshot
// transfer, so the pause no longer grows with the daemon's size. The state
// machines are unchanged: to them the delta is just a (small) snapshot.

const (
	framePrecopy    byte = 3 // a wire.SnapshotChunk of the base snapshot
	framePrecopyAck byte = 4 // id u64 | ok byte | message
	packDelta       byte = 2 // snapshot bytes: removed pages + packed delta
)

// DefaultPreCopyThreshold is the live memory above which a migration
// pre-copies; below it one transfer is quicker than two.
const DefaultPreCopyThreshold = 1 << 20

// staged is a base received ahead of a migration.
type staged struct {
	from NodeID
	s    *host.Staged
	at   time.Time
	// size is what the staged instance holds (its reservation), round the
	// latest round written into it (rounds.go).
	size  uint64
	round uint32
	in    *precopyIn // a round being received
}

// precopy runs before the orchestrator starts; caller does not hold m.mu.
// It sends the base, then rounds of dirtied pages (rounds.go), and returns
// the snapshot the target's staged copy now equals. On any failure the
// migration simply goes ahead without a base.
func (m *Migrator) precopy(ctx context.Context, id uint64, d *host.Daemon, target NodeID, opts Options) (precopyResult, error) {
	base, err := d.Snapshot(ctx)
	if err != nil {
		return precopyResult{}, err
	}
	data, err := snapshot.Encode(base, d.Identity())
	if err != nil {
		return precopyResult{}, err
	}
	ack := make(chan error, 1)
	m.mu.Lock()
	m.precopyAcks[id] = ack
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.precopyAcks, id)
		m.mu.Unlock()
	}()
	packed := m.pack.pack(data)
	if err := m.sendPrecopy(ctx, framePrecopy, wire.Header{ID: id, Attempt: 1}, d.Origin(), base.Sequence, packed, target, ack); err != nil {
		return precopyResult{}, err
	}
	res := precopyResult{base: base, bytes: []int{len(packed)}}
	return m.rounds(ctx, id, d, target, opts, ack, res)
}

// sendPrecopy queues one pre-copy transfer (the base or a round) to target
// and waits for the target's acknowledgement that it is staged.
func (m *Migrator) sendPrecopy(ctx context.Context, typ byte, h wire.Header, origin, seq uint64, packed []byte, target NodeID, ack chan error) error {
	m.mu.Lock()
	q := m.peer(target)
	m.mu.Unlock()
	// Queued outside the lock and held to the lane's byte budget: the
	// chunks go no faster than their stream takes them.
	for _, c := range migration.Split(h, origin, seq, packed, m.chunkSize()) {
		b, err := wire.Encode(c)
		if err != nil {
			return err
		}
		if err := q.pushWait(ctx, append([]byte{typ}, b...)); err != nil {
			return err
		}
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err := <-ack:
		return err
	case <-t.C:
		return errors.New("migrator: target did not acknowledge the pre-copy in 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Migrator) chunkSize() int {
	if m.cfg.Limits.ChunkSize > 0 {
		return m.cfg.Limits.ChunkSize
	}
	return migration.DefaultLimits().ChunkSize
}

// precopyIn is a base being received here.
type precopyIn struct {
	asm *migration.Reassembler
	at  time.Time // last chunk: a source that stops sending is given up after stagedTTL
}

// stagedTTL is how long a base waits here for its migration (or for its
// next chunk). Not the linger: a short linger (tests use 200 ms) must not
// expire a base between its acknowledgement and the delta that needs it;
// the source starts the migration as soon as it has the acknowledgement,
// and gives up waiting for one after 30 s.
const stagedTTL = time.Minute

// receivePrecopy reassembles a base on the target and stages it; caller
// holds m.mu. Every base is reserved against the node-wide inbound budget
// when its first chunk arrives; past the budget the source is told at
// once, and migrates without a base.
func (m *Migrator) receivePrecopy(from NodeID, c wire.SnapshotChunk) error {
	id := c.Header.ID
	if _, ok := m.staged[id]; ok {
		return fmt.Errorf("%w: pre-copy %016x already staged", ErrBadFrame, id)
	}
	in := m.precopyIn[id]
	if in == nil {
		if c.Index != 0 {
			// The rest of a base refused or given up: chunks of one base
			// come in order, so a base starts with chunk 0.
			return fmt.Errorf("%w: pre-copy %016x chunk %d without its start", ErrBadFrame, id, c.Index)
		}
		if len(m.staged)+len(m.precopyIn) >= maxStaged {
			return m.refusePrecopy(from, c, fmt.Errorf("%w: %d pre-copies already staged", ErrBadFrame, maxStaged))
		}
		if !m.inbound.reserve(inboundKey{id: id, pre: true}, c.TotalBytes) {
			return m.refusePrecopy(from, c, fmt.Errorf("%w: inbound migration budget in use (%d of %d bytes)", ErrBusy, m.inbound.used, m.inbound.limit))
		}
		lim := m.maxSnapshot()
		in = &precopyIn{asm: migration.NewReassembler(lim, lim)}
		m.precopyIn[id] = in
	}
	in.at = time.Now()
	if err := in.asm.Begin(id, c.SnapshotSeq, c.Count, c.TotalBytes); err != nil {
		m.dropPrecopyIn(id)
		return err
	}
	packed, done, err := in.asm.Add(wire.SnapshotChunk{Header: c.Header, Origin: id, SnapshotSeq: c.SnapshotSeq,
		Index: c.Index, Count: c.Count, TotalBytes: c.TotalBytes, Data: c.Data})
	if err != nil {
		m.dropPrecopyIn(id)
		return err
	}
	if !done {
		return nil
	}
	// The reservation stays with the base through staging and until its
	// migration uses it or it expires.
	delete(m.precopyIn, id)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, size, err := m.stage(ctx, from, packed)
		var old *host.Staged
		m.mu.Lock()
		if err == nil && !m.inbound.reserve(inboundKey{id: id, pre: true}, size) {
			// Staged, the base holds its unpacked size, not what travelled.
			old, s = s, nil
			err = fmt.Errorf("%w: a staged base of %d bytes is over the inbound migration budget (%d of %d bytes in use)",
				ErrBusy, size, m.inbound.used, m.inbound.limit)
		}
		if err == nil {
			if o := m.staged[id]; o != nil {
				old = o.s
			}
			m.staged[id] = &staged{from: from, s: s, at: time.Now(), size: size}
		} else {
			m.inbound.release(inboundKey{id: id, pre: true})
		}
		m.peer(from).push(precopyAck(id, err))
		m.mu.Unlock()
		if old != nil {
			old.Discard(ctx)
		}
	}()
	return nil
}

// ErrBusy refuses a pre-copy while the node's inbound budget is in use.
var ErrBusy = errors.New("migrator: node busy with inbound migrations")

// refusePrecopy answers the source once (on the first chunk; the rest of
// the base is dropped as it comes) so it goes ahead without a base instead
// of waiting for an acknowledgement. Caller holds m.mu.
func (m *Migrator) refusePrecopy(from NodeID, c wire.SnapshotChunk, err error) error {
	if c.Index == 0 {
		m.peer(from).push(precopyAck(c.Header.ID, err))
	}
	return err
}

func precopyAck(id uint64, err error) []byte {
	frame := binary.LittleEndian.AppendUint64([]byte{framePrecopyAck}, id)
	if err != nil {
		return append(append(frame, 0), err.Error()...)
	}
	return append(frame, 1)
}

func (m *Migrator) dropPrecopyIn(id uint64) {
	delete(m.precopyIn, id)
	m.inbound.release(inboundKey{id: id, pre: true})
}

// takeStaged hands the staged base of migration id to its restore and
// releases its reservation: from here on it is the restore's memory.
// Caller holds m.mu.
func (m *Migrator) takeStaged(id uint64) *staged {
	st := m.staged[id]
	delete(m.staged, id)
	m.inbound.release(inboundKey{id: id, pre: true})
	return st
}

// expirePrecopy gives up bases whose source went quiet and staged bases
// no migration used within stagedTTL; it returns the staged instances to
// discard off the lock. Caller holds m.mu.
func (m *Migrator) expirePrecopy(now time.Time) []*host.Staged {
	for id, in := range m.precopyIn {
		if now.Sub(in.at) > stagedTTL {
			m.dropPrecopyIn(id)
		}
	}
	var drop []*host.Staged
	for id, st := range m.staged {
		if now.Sub(st.at) > stagedTTL {
			drop = append(drop, m.takeStaged(id).s)
		}
	}
	return drop
}

func (m *Migrator) maxSnapshot() uint64 {
	if n := m.cfg.Limits.MaxSnapshotBytes; n > 0 {
		return n
	}
	return migration.DefaultLimits().MaxSnapshotBytes
}

const maxStaged = 8

// stage builds an instance from a base; it also returns the base's
// unpacked size, which is what the staged instance holds.
func (m *Migrator) stage(ctx context.Context, from NodeID, packed []byte) (*host.Staged, uint64, error) {
	raw, err := m.pack.unpack(packed)
	if err != nil {
		return nil, 0, err
	}
	base, err := snapshot.Decode(raw, snapshot.DefaultLimits())
	if err != nil {
		return nil, 0, err
	}
	digest := string(host.DigestFromBytes(base.ModuleDigest))
	if _, err := m.cfg.Runtime.Kind(digest); err != nil {
		b, err := m.cfg.Mesh.FetchModule(ctx, from, digest)
		if err != nil {
			return nil, 0, err
		}
		if _, err := m.cfg.Runtime.RegisterModule(ctx, b, ""); err != nil {
			return nil, 0, err
		}
	}
	s, err := m.cfg.Runtime.Stage(ctx, digest, base, host.SpawnOptions{})
	return s, uint64(len(raw)), err
}

func (m *Migrator) receivePrecopyAck(b []byte) error {
	if len(b) < 9 {
		return fmt.Errorf("%w: short pre-copy ack", ErrBadFrame)
	}
	id := binary.LittleEndian.Uint64(b)
	var err error
	if b[8] != 1 {
		err = fmt.Errorf("migrator: target refused the pre-copy: %s", b[9:])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.precopyAcks[id]; ch != nil {
		select {
		case ch <- err:
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
