package engine

import (
	"bytes"
	"context"
	"fmt"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Pre-copy migration moves a large daemon with a short pause: a base
// snapshot travels while the daemon keeps running, the target builds an
// instance from it ahead of time (Stage), and at the freeze only the pages
// that differ from the base travel (FreezeAndSnapshotDelta) and are written
// into the staged instance (Commit).

// Delta is a frozen daemon's state relative to a base snapshot: Snap holds
// every meta field and global of the current state but only the pages that
// changed or appeared since the base; Removed lists base pages that are
// zero now.
type Delta struct {
	Snap    *snapshot.Snapshot
	Removed []uint32
}

// FreezeAndSnapshotDelta installs f (freezing the daemon, as
// FreezeAndSnapshot does) and captures its state relative to base, which
// must be an earlier transparent snapshot of this daemon.
func (d *Daemon) FreezeAndSnapshotDelta(ctx context.Context, base *snapshot.Snapshot, f Interceptor) (*Delta, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked(); err != nil {
		return nil, err
	}
	if d.kind.Cooperative() || base == nil || base.Mode != snapshot.Transparent || base.EntityID != d.entity {
		return nil, fmt.Errorf("%w: a delta needs a transparent base snapshot of this daemon", ErrSnapshotUnsupported)
	}
	if d.inst.tablesMutated() {
		return nil, fmt.Errorf("%w: the guest mutated a table", ErrSnapshotUnsupported)
	}
	d.SetInterceptor(f)
	delta, err := d.deltaLocked(base)
	if err != nil {
		d.SetInterceptor(nil)
		return nil, err
	}
	return delta, nil
}

// deltaLocked captures the daemon's state relative to base (checked by
// the caller); caller holds d.mu.
func (d *Daemon) deltaLocked(base *snapshot.Snapshot) (*Delta, error) {
	in := d.inst
	if in.tablesMutated() {
		return nil, fmt.Errorf("%w: the guest mutated a table", ErrSnapshotUnsupported)
	}
	size := in.mem.Size()
	mem, ok := in.mem.Read(0, size)
	if !ok {
		return nil, fmt.Errorf("%w: memory unreadable", ErrSnapshotUnsupported)
	}
	s := d.metaSnapshotLocked()
	s.Mode, s.MemoryPages = snapshot.Transparent, size/snapshot.PageSize
	delta := &Delta{Snap: s}
	bi := 0
	for p := uint32(0); p < s.MemoryPages; p++ {
		live := mem[int(p)*snapshot.PageSize : int(p+1)*snapshot.PageSize]
		var was []byte
		for bi < len(base.Pages) && base.Pages[bi].Index < p {
			bi++
		}
		if bi < len(base.Pages) && base.Pages[bi].Index == p {
			was = base.Pages[bi].Data
		}
		// An unchanged page is the common case: compare with the base
		// first, so a mostly clean daemon is read once, not twice.
		if was != nil && bytes.Equal(live, was) {
			continue
		}
		zero := bytes.Equal(live, d.rt.zeroPage)
		switch {
		case was == nil && zero:
		case zero:
			delta.Removed = append(delta.Removed, p)
		default:
			s.Pages = append(s.Pages, snapshot.Page{Index: p, Data: bytes.Clone(live)})
		}
	}
	for i, g := range in.globals {
		m := in.meta.Globals[i]
		s.Globals = append(s.Globals, snapshot.Global{Index: m.Index, Type: m.Type, Bits: g.Get()})
	}
	d.snapSeq++
	s.Sequence = d.snapSeq
	s.Annotations.Counters.Snapshots = d.snapshots.Add(1)
	return delta, nil
}

// Staged is a daemon built from a base snapshot ahead of a migration. It is
// invisible and processes nothing until Commit; Discard drops it.
type Staged struct {
	d    *Daemon
	base *snapshot.Snapshot
}

// Stage builds a daemon from a transparent base snapshot without
// registering it. The caller must not modify base afterwards.
func (rt *Runtime) Stage(ctx context.Context, kindOrDigest string, base *snapshot.Snapshot, opts SpawnOptions) (*Staged, error) {
	if base == nil || base.Mode != snapshot.Transparent {
		return nil, fmt.Errorf("%w: staging needs a transparent snapshot", ErrSnapshotUnsupported)
	}
	d, err := rt.build(ctx, kindOrDigest, base.EntityID, opts, base)
	if err != nil {
		return nil, err
	}
	return &Staged{d: d, base: base}, nil
}

// Base is the snapshot the staged daemon was built from.
func (s *Staged) Base() *snapshot.Snapshot { return s.base }

// Discard drops a staged daemon that will not be committed.
func (s *Staged) Discard(ctx context.Context) { s.d.stop(ctx) }

// Commit brings the staged daemon to the state of delta, gives it its
// identity, and registers it. The identity must be the snapshot's entity.
// On any error the staged daemon is discarded.
func (s *Staged) Commit(ctx context.Context, id identity.Identity, delta *Delta, f Interceptor) (*Daemon, error) {
	d := s.d
	ds := delta.Snap
	if id.IsZero() || id.EntityID() != d.entity || ds.EntityID != d.entity {
		d.stop(ctx)
		return nil, fmt.Errorf("%w: delta or identity is not of the staged daemon", ErrSnapshotIdentityMismatch)
	}
	if ds.ModuleDigest != s.base.ModuleDigest || ds.Mode != snapshot.Transparent || ds.ChainHead.Origin != d.origin {
		d.stop(ctx)
		return nil, fmt.Errorf("%w: delta does not match its base", ErrSnapshotUnsupported)
	}
	d.mu.Lock()
	err := d.applyDeltaLocked(s.base, delta)
	if err == nil {
		d.id = id
		d.head, d.headHash = ds.ChainHead, ds.HeadHash
		d.horizon = horizonOf(ds)
		d.inputSeq, d.snapSeq = ds.InputSeq, ds.Sequence
		d.ledger = append([]snapshot.Subscription(nil), ds.Ledger...)
		d.outbox.fromSnapshot(ds.Outbox)
		// The delta is newer than the base the daemon was staged from.
		d.restoreAnnotationsLocked(ds.Annotations)
	}
	d.mu.Unlock()
	if err != nil {
		d.stop(ctx)
		return nil, err
	}
	d.SetInterceptor(f)
	if err := d.rt.register(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) applyDeltaLocked(base *snapshot.Snapshot, delta *Delta) error {
	in, ds := d.inst, delta.Snap
	cur := in.mem.Size() / snapshot.PageSize
	if ds.MemoryPages < cur {
		return fmt.Errorf("%w: delta has %d memory pages, the staged instance %d", ErrSnapshotUnsupported, ds.MemoryPages, cur)
	}
	if ds.MemoryPages > cur {
		if _, ok := in.mem.Grow(ds.MemoryPages - cur); !ok {
			return fmt.Errorf("%w: delta needs %d pages, above this daemon's cap", ErrMemoryLimit, ds.MemoryPages)
		}
	}
	mem, ok := in.mem.Read(0, in.mem.Size())
	if !ok {
		return fmt.Errorf("%w: memory unwritable", ErrSnapshotUnsupported)
	}
	for _, p := range delta.Removed {
		if p >= ds.MemoryPages {
			return fmt.Errorf("%w: removed page %d beyond memory", ErrSnapshotUnsupported, p)
		}
		clear(mem[int(p)*snapshot.PageSize : int(p+1)*snapshot.PageSize])
	}
	for _, pg := range ds.Pages {
		if pg.Index >= ds.MemoryPages || len(pg.Data) != snapshot.PageSize {
			return fmt.Errorf("%w: delta page %d malformed", ErrSnapshotUnsupported, pg.Index)
		}
		copy(mem[int(pg.Index)*snapshot.PageSize:], pg.Data)
	}
	if len(ds.Globals) != len(in.globals) {
		return fmt.Errorf("%w: delta has %d globals, module %d", ErrSnapshotUnsupported, len(ds.Globals), len(in.globals))
	}
	for i, g := range ds.Globals {
		if m := in.meta.Globals[i]; g.Index != m.Index || g.Type != m.Type {
			return fmt.Errorf("%w: delta global %d does not match the module", ErrSnapshotUnsupported, g.Index)
		}
		in.globals[i].Set(g.Bits)
	}
	// The rollback point is the merged state, shared with base and delta.
	merged := mergePages(base.Pages, ds.Pages, delta.Removed)
	d.journal.ckpt.borrow(&snapshot.Snapshot{MemoryPages: ds.MemoryPages, Pages: merged, Globals: ds.Globals})
	d.journal.reset()
	return nil
}

// mergePages overlays changed pages on base pages and drops removed ones;
// all three inputs are sorted by index.
func mergePages(base, changed []snapshot.Page, removed []uint32) []snapshot.Page {
	gone := make(map[uint32]bool, len(removed))
	for _, r := range removed {
		gone[r] = true
	}
	out := make([]snapshot.Page, 0, len(base)+len(changed))
	i, j := 0, 0
	for i < len(base) || j < len(changed) {
		switch {
		case j == len(changed) || (i < len(base) && base[i].Index < changed[j].Index):
			if !gone[base[i].Index] {
				out = append(out, base[i])
			}
			i++
		case i == len(base) || changed[j].Index < base[i].Index:
			out = append(out, changed[j])
			j++
		default: // same index: the change wins
			out = append(out, changed[j])
			i++
			j++
		}
	}
	return out
}

func horizonOf(s *snapshot.Snapshot) *chain.Horizon { return chain.HorizonFrom(s.Horizon) }
