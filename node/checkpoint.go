package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
	"github.com/wasmesh/wasmesh/internal/store"
	"github.com/wasmesh/wasmesh/internal/wal"
)

// loadModules registers every module in the data dir, with its kind names.
func (n *Node) loadModules(ctx context.Context) error {
	digests, err := n.layout.moduleDigests()
	if err != nil {
		return err
	}
	aliases, err := n.store.Aliases()
	if err != nil {
		return err
	}
	byDigest := map[string][]string{}
	for _, p := range store.SortedAliases(aliases) {
		byDigest[p[1]] = append(byDigest[p[1]], p[0])
	}
	for _, dg := range digests {
		mod, err := n.layout.loadModule(dg)
		if err == nil {
			_, err = n.rt.RegisterModule(ctx, mod, "")
		}
		for _, a := range byDigest[dg] {
			if err == nil {
				_, err = n.rt.RegisterModule(ctx, mod, a)
			}
		}
		if err != nil {
			// One bad file must not keep the node (and its other
			// daemons) down; the daemons of that module report it.
			n.log.Error("stored module not loaded", "digest", dg, "err", err)
		}
	}
	return nil
}

// recover brings back every daemon the store says was running, from its
// latest checkpoint, under its own identity, then redoes the events the
// journal holds after that checkpoint.
func (n *Node) recover(ctx context.Context, journaled *wal.Recovered) error {
	recs, err := n.store.Records()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Stopped || n.setAsideIfModuleMissing(rec, journaled.Histories[rec.Origin]) {
			continue
		}
		d, seq, err := n.recoverOne(ctx, rec)
		if err != nil {
			n.setAsideFailed(rec, journaled.Histories[rec.Origin], err)
			continue
		}
		n.recovered++
		// The checkpoint's sequence: the redone events are not in the store
		// yet, so the next checkpoint round writes them.
		n.lastCkpt.Store(d.Origin(), d.Stats().InputSeq)
		redone := n.redo(ctx, d, journaled.Histories[rec.Origin])
		st := d.Stats()
		n.log.Info("daemon recovered", "daemon", d.ID(), "name", rec.Name, "digest", rec.Digest,
			"checkpoint_seq", seq, "journal_events", redone, "input_seq", st.InputSeq)
	}
	return nil
}

// redo re-applies the journaled events after d's checkpoint, in order, and
// returns how many it applied. A gap or a diverging event stops it: the
// events after it cannot be applied to any state the daemon had.
func (n *Node) redo(ctx context.Context, d *engine.Daemon, events []wal.Record) int {
	done := 0
	next := d.Stats().InputSeq + 1
	for _, r := range events {
		if r.InputSeq < next {
			continue // covered by the checkpoint
		}
		if r.InputSeq != next {
			n.log.Error("journal has a gap; later events of the daemon are lost", "daemon", d.ID(),
				"want_input_seq", next, "found", r.InputSeq)
			break
		}
		ev := engine.Event{Sender: r.Sender, Seq: r.SenderSeq, Payload: r.Payload}
		if _, err := d.Redo(ctx, ev, r.Readings); err != nil {
			n.log.Error("journaled event could not be redone; the daemon stays at the state before it",
				"daemon", d.ID(), "input_seq", r.InputSeq, "lost_events", len(events)-done, "err", err)
			break
		}
		done++
		next++
	}
	return done
}

// finishJournalRecovery makes the redone events durable again (under
// DurabilitySync they were journaled anew). The journal from before the
// restart is released once every daemon it holds events of is back: a
// daemon still waiting for its module keeps it (releaseRecoveryJournal); a
// failed daemon keeps only its own history (keepFailedJournals).
func (n *Node) finishJournalRecovery(ctx context.Context, j *wal.Journal) error {
	n.recoveryJournal = j
	n.keepFailedJournals(j)
	if n.wal != nil {
		if err := j.Sync(ctx); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if !n.recoveryHeld() {
		n.releaseRecoveryJournal(ctx)
	}
	return nil
}

// releaseRecoveryJournal lets the journal drop what it held from before the
// restart: under DurabilitySync the redone events are journaled anew; under
// DurabilityInterval they are checkpointed first, then the journal closes.
func (n *Node) releaseRecoveryJournal(ctx context.Context) {
	n.ckptMu.Lock()
	j := n.recoveryJournal
	n.recoveryJournal = nil
	n.ckptMu.Unlock()
	if j == nil {
		return
	}
	if n.wal != nil {
		j.Done()
		return
	}
	for _, d := range n.rt.Daemons() {
		if err := n.checkpoint(ctx, d, false); err != nil {
			n.log.Error("checkpoint after journal recovery failed; the journal is kept for the next start", "daemon", d.ID(), "err", err)
			j.Close()
			return
		}
	}
	j.Done()
	if err := j.Close(); err != nil {
		n.log.Warn("journal not closed cleanly", "err", err)
	}
}

func (n *Node) recoverOne(ctx context.Context, rec store.Record) (*engine.Daemon, uint64, error) {
	id, err := identity.FromSeed(rec.Seed)
	if err != nil {
		return nil, 0, err
	}
	if id.Origin() != rec.Origin {
		return nil, 0, fmt.Errorf("%w: record seed is daemon %016x", store.ErrCorrupt, id.Origin())
	}
	opts := engine.SpawnOptions{Name: rec.Name, Config: rec.Config}
	ck, err := n.store.LatestSnapshot(rec.Origin)
	if errors.Is(err, store.ErrNotFound) {
		d, err := n.rt.Spawn(ctx, rec.Digest, id, opts)
		return d, 0, err
	}
	if err != nil {
		return nil, 0, err
	}
	snap, err := snapshot.Decode(ck.Data, snapshot.DefaultLimits())
	if err != nil {
		return nil, 0, err
	}
	d, err := n.rt.SpawnFromSnapshot(ctx, rec.Digest, id, snap, opts)
	return d, ck.Seq, err
}

// checkpoint stores d's current state as its latest snapshot; unless force,
// a daemon that processed nothing since its last checkpoint is skipped.
func (n *Node) checkpoint(ctx context.Context, d *engine.Daemon, force bool) error {
	mu := n.ckptLock(d.Origin())
	mu.Lock()
	defer mu.Unlock()
	st := d.Stats()
	if st.Failed {
		return fmt.Errorf("%w: %s", engine.ErrDaemonFailed, d.ID())
	}
	if !force {
		if last, ok := n.lastCkpt.Load(d.Origin()); ok && last.(uint64) == st.InputSeq {
			return nil
		}
	}
	inc := d.Incarnation()
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return err
	}
	data, err := d.SignSnapshot(snap)
	if err != nil {
		return err
	}
	if _, err := n.store.PutSnapshot(d.Origin(), time.Now(), data); err != nil {
		return err
	}
	n.journalCovered(d, inc, snap.InputSeq)
	n.lastCkpt.Store(d.Origin(), snap.InputSeq)
	n.metrics.snapshotBytes.Add(float64(len(data)))
	n.metrics.checkpoints.Inc()
	return nil
}

// journalCovered tells the journal a durable checkpoint covers d's events
// up to inputSeq.
func (n *Node) journalCovered(d *engine.Daemon, inc, inputSeq uint64) {
	if n.wal != nil {
		n.wal.Checkpointed(d.Origin(), inc, inputSeq)
	}
}

// checkpointAll checkpoints every local daemon and returns how many it
// stored (or found current).
func (n *Node) checkpointAll(ctx context.Context, force bool) int {
	ok := 0
	for _, d := range n.rt.Daemons() {
		if err := n.checkpoint(ctx, d, force); err != nil {
			// A failed daemon was reported when it failed; it keeps its
			// last good checkpoint, and one line per interval would flood.
			if !errors.Is(err, engine.ErrDaemonStopped) && !errors.Is(err, engine.ErrDaemonFailed) {
				n.log.Warn("checkpoint failed", "daemon", d.ID(), "err", err)
			}
			continue
		}
		ok++
	}
	return ok
}

func (n *Node) checkpointLoop() {
	defer n.wg.Done()
	if n.cfg.CheckpointInterval < 0 {
		return
	}
	t := time.NewTicker(n.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.checkpointAll(n.ctx, false)
		}
	}
}

// CheckpointNow checkpoints every daemon that changed (for tests and the
// admin API).
func (n *Node) CheckpointNow(ctx context.Context) int { return n.checkpointAll(ctx, false) }

// journalForget tells the journal origin's events are no longer needed.
func (n *Node) journalForget(origin uint64) {
	if n.wal != nil {
		n.wal.Forget(origin)
	}
}
