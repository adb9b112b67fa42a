package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
)

// kindNameOf is the kind name a daemon spawned as ref runs under: ref
// itself when it is a name, else the first name this node gives its digest.
func (n *Node) kindNameOf(k *engine.Kind, ref string) string {
	if ref != "" && !strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	al := n.rt.KindAliases(k.Digest)
	slices.Sort(al)
	if len(al) > 0 {
		return al[0]
	}
	return ""
}

// keepArrivedKind makes a daemon that arrived by migration recoverable
// from this data dir: its module's bytes go to disk (the migration fetched
// them into memory only) and the kind name it carried becomes a kind name
// here unless this node already uses that name for another module. It runs
// before the daemon's record is written, so no record here ever names a
// module this node could not load after a crash.
func (n *Node) keepArrivedKind(ctx context.Context, d *engine.Daemon) error {
	k := d.Kind()
	if _, err := n.layout.saveModule(k.Bytes()); err != nil {
		return fmt.Errorf("store module %s: %w", k.Digest, err)
	}
	kind := d.KindName()
	if kind == "" || CheckName("kind", kind) != nil {
		// A name outside the alphabet (a snapshot from an older node) is
		// never registered; it stays on the daemon for display only.
		return nil
	}
	switch other, err := n.rt.Kind(kind); {
	case err == nil && other.Digest == k.Digest:
		return nil
	case err == nil:
		n.log.Warn("arrived daemon's kind name is another module here; it keeps the name for display only",
			"daemon", d.ID(), "kind", kind, "digest", k.Digest, "here", other.Digest)
		return nil
	}
	if err := n.store.SetAlias(kind, string(k.Digest)); err != nil {
		return fmt.Errorf("store kind name %q: %w", kind, err)
	}
	if _, err := n.rt.RegisterModule(ctx, k.Bytes(), kind); err != nil {
		return fmt.Errorf("register kind name %q: %w", kind, err)
	}
	return nil
}

// takeCarriedNameLocked gives a daemon that just arrived by migration the
// name its snapshot carried, in memory and at once, so that the name
// resolves here from the cutover on (the record follows in
// createArrived). When a daemon here already has that name it keeps
// only its id here, as before names travelled. Caller holds n.mu.
func (n *Node) takeCarriedNameLocked(d *engine.Daemon) {
	name := d.Carried().Name
	if name == "" || d.Name() != "" || validName(name) != nil {
		return
	}
	if other, ok := n.findLocal(name); ok && other.Origin() != d.Origin() {
		n.log.Warn("migrated daemon's name is taken here; it keeps only its id", "daemon", d.ID(), "name", name, "taken_by", other.ID())
		return
	}
	d.SetName(name)
}

// createArrived records a daemon that arrived by migration, under the name
// it has here, together with its first checkpoint in one store transaction
// (a record without a checkpoint would come back from a crash as a fresh
// daemon, and the source has wiped its copy). It does not hold n.mu while
// it writes: arrivals (a drain) share the store's commits; the daemon's
// checkpoint lock keeps a stop of it out meanwhile.
func (n *Node) createArrived(ctx context.Context, d *engine.Daemon, rec store.Record) (store.Record, error) {
	mu := n.ckptLock(d.Origin())
	mu.Lock()
	defer mu.Unlock()
	inc := d.Incarnation()
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return rec, fmt.Errorf("first checkpoint: %w", err)
	}
	data, err := d.SignSnapshot(snap)
	if err != nil {
		return rec, fmt.Errorf("first checkpoint: %w", err)
	}
	rec.Name = d.Name()
	_, err = n.store.Adopt(rec, time.Now(), data)
	if errors.Is(err, store.ErrNameTaken) && rec.Name != "" {
		// A stopped or waiting record here holds the name.
		n.log.Warn("migrated daemon's name is taken here; it keeps only its id", "daemon", d.ID(), "name", rec.Name, "err", err)
		d.SetName("")
		rec.Name = ""
		_, err = n.store.Adopt(rec, time.Now(), data)
	}
	if err != nil {
		return rec, err
	}
	n.journalCovered(d, inc, snap.InputSeq)
	n.lastCkpt.Store(d.Origin(), snap.InputSeq)
	n.metrics.snapshotBytes.Add(float64(len(data)))
	n.metrics.checkpoints.Inc()
	return rec, nil
}
