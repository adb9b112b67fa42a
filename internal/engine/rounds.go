package engine

import (
	"context"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Iterative pre-copy: between the base and the freeze, the source may send
// rounds of the pages dirtied since the previous round while the daemon
// keeps running (SnapshotDelta), and the target writes each round into its
// staged instance (Staged.Advance). The freeze then only carries what was
// dirtied during the last round. wazero has no dirty-page tracking, so a
// round finds its pages by comparing memory with the previous round.

// SnapshotDelta captures the running daemon's state relative to base (an
// earlier transparent snapshot of this daemon, or one rebuilt by Merged)
// without freezing it: it holds the daemon's lock for one pass over its
// memory, so the view is consistent between two events.
func (d *Daemon) SnapshotDelta(ctx context.Context, base *snapshot.Snapshot) (*Delta, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked(); err != nil {
		return nil, err
	}
	if d.kind.Cooperative() || base == nil || base.Mode != snapshot.Transparent || base.EntityID != d.entity {
		return nil, fmt.Errorf("%w: a delta needs a transparent base snapshot of this daemon", ErrSnapshotUnsupported)
	}
	return d.deltaLocked(base)
}

// Merged is the full snapshot that base with dl applied equals: dl's meta
// fields and globals, base's pages overlaid with dl's and without the
// removed ones. It shares page data with both; neither may be modified
// afterwards.
func (dl *Delta) Merged(base *snapshot.Snapshot) *snapshot.Snapshot {
	s := *dl.Snap
	s.Pages = mergePages(base.Pages, dl.Snap.Pages, dl.Removed)
	return &s
}

// DirtyBytes is how much page data the delta carries.
func (dl *Delta) DirtyBytes() int64 {
	return int64(len(dl.Snap.Pages)) * snapshot.PageSize
}

// Advance writes an intermediate round into the staged daemon: its memory
// and globals become those of delta, and its base becomes the merged
// snapshot, which the next round or the final delta is relative to. On any
// error the staged daemon is discarded.
func (s *Staged) Advance(ctx context.Context, delta *Delta) error {
	d, ds := s.d, delta.Snap
	if ds == nil || ds.EntityID != d.entity || ds.ModuleDigest != s.base.ModuleDigest || ds.Mode != snapshot.Transparent {
		d.stop(ctx)
		return fmt.Errorf("%w: round does not match its base", ErrSnapshotUnsupported)
	}
	d.mu.Lock()
	err := d.applyDeltaLocked(s.base, delta)
	d.mu.Unlock()
	if err != nil {
		d.stop(ctx)
		return err
	}
	s.base = delta.Merged(s.base)
	return nil
}
