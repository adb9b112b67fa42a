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
}

// precopy runs before the orchestrator starts; caller does not hold m.mu.
// On any failure the migration simply goes ahead without a base.
func (m *Migrator) precopy(ctx context.Context, id uint64, d *host.Daemon, target NodeID) (*snapshot.Snapshot, error) {
	base, err := d.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	data, err := snapshot.Encode(base, d.Identity())
	if err != nil {
		return nil, err
	}
	packed := m.pack.pack(data)
	ack := make(chan error, 1)
	m.mu.Lock()
	m.precopyAcks[id] = ack
	q := m.peer(target)
	for _, c := range migration.Split(wire.Header{ID: id, Attempt: 1}, d.Origin(), base.Sequence, packed, m.chunkSize()) {
		b, err := wire.Encode(c)
		if err != nil {
			delete(m.precopyAcks, id)
			m.mu.Unlock()
			return nil, err
		}
		q.push(append([]byte{framePrecopy}, b...))
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.precopyAcks, id)
		m.mu.Unlock()
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err := <-ack:
		if err != nil {
			return nil, err
		}
		return base, nil
	case <-t.C:
		return nil, errors.New("migrator: target did not acknowledge the pre-copy in 30s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Migrator) chunkSize() int {
	if m.cfg.Limits.ChunkSize > 0 {
		return m.cfg.Limits.ChunkSize
	}
	return migration.DefaultLimits().ChunkSize
}

// receivePrecopy reassembles a base on the target and stages it; caller
// holds m.mu.
func (m *Migrator) receivePrecopy(from NodeID, c wire.SnapshotChunk) error {
	if len(m.staged) >= maxStaged {
		return fmt.Errorf("%w: %d pre-copies already staged", ErrBadFrame, len(m.staged))
	}
	id := c.Header.ID
	if err := m.precopyAsm.Begin(id, c.SnapshotSeq, c.Count, c.TotalBytes); err != nil {
		return err
	}
	packed, done, err := m.precopyAsm.Add(wire.SnapshotChunk{Header: c.Header, Origin: id, SnapshotSeq: c.SnapshotSeq,
		Index: c.Index, Count: c.Count, TotalBytes: c.TotalBytes, Data: c.Data})
	if err != nil || !done {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := m.stage(ctx, from, packed)
		m.mu.Lock()
		if err == nil {
			if old := m.staged[id]; old != nil {
				old.s.Discard(ctx)
			}
			m.staged[id] = &staged{from: from, s: s, at: time.Now()}
		}
		frame := binary.LittleEndian.AppendUint64([]byte{framePrecopyAck}, id)
		if err != nil {
			frame = append(append(frame, 0), err.Error()...)
		} else {
			frame = append(frame, 1)
		}
		m.peer(from).push(frame)
		m.mu.Unlock()
	}()
	return nil
}

const maxStaged = 8

func (m *Migrator) stage(ctx context.Context, from NodeID, packed []byte) (*host.Staged, error) {
	raw, err := m.pack.unpack(packed)
	if err != nil {
		return nil, err
	}
	base, err := snapshot.Decode(raw, snapshot.DefaultLimits())
	if err != nil {
		return nil, err
	}
	digest := string(host.DigestFromBytes(base.ModuleDigest))
	if _, err := m.cfg.Runtime.Kind(digest); err != nil {
		b, err := m.cfg.Mesh.FetchModule(ctx, from, digest)
		if err != nil {
			return nil, err
		}
		if _, err := m.cfg.Runtime.RegisterModule(ctx, b, ""); err != nil {
			return nil, err
		}
	}
	return m.cfg.Runtime.Stage(ctx, digest, base, host.SpawnOptions{})
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
