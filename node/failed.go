package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/snapshot"
	"github.com/wasmesh/wasmesh/internal/store"
	"github.com/wasmesh/wasmesh/internal/wal"
)

// A daemon whose recovery at startup fails (its start function blows the
// CPU budget on today's clock, its checkpoint no longer instantiates) must
// neither keep the node down nor vanish: the node comes up healthy and the
// daemon is failed, first-class. `ps` lists it with the reason; a send, a
// snapshot or a migration of it fails with ErrDaemonFailed naming the
// reason; its name stays taken; `stop` removes it for good (record,
// checkpoints and journaled events released). Until then its record and
// its journaled events are kept exactly as they were, like those of a
// daemon waiting for its module (modules_missing.go), so the next start
// (with more budget, a fixed clock, a fixed host) retries it from the same
// checkpoint and the same events. Unlike a wait for a module, a failure
// may last: the journal keeps only that daemon's history (wal Keep, carried
// forward by compaction) instead of every segment from before the restart.
// `restore` of a snapshot brings it back too.

// failedDaemons holds the records whose recovery failed at startup.
type failedDaemons struct {
	mu sync.Mutex
	m  map[uint64]*failedDaemon
}

type failedDaemon struct {
	rec     store.Record
	reason  string
	events  int // journaled events after its checkpoint, kept for a retry
	kindRef string
	// inc and covered name its journal history and what its checkpoint
	// covers of it (keepFailedJournals).
	inc, covered uint64
}

// setAsideFailed keeps rec, whose recovery failed with err, as a failed
// daemon.
func (n *Node) setAsideFailed(rec store.Record, journal []wal.Record, err error) {
	reason := oneLine(err.Error())
	covered := n.checkpointCovers(rec.Origin)
	events := 0
	for _, r := range journal {
		if r.InputSeq > covered {
			events++
		}
	}
	var inc uint64
	if len(journal) > 0 {
		inc = journal[0].Incarnation
	}
	n.log.Error("daemon not recovered: it is listed as failed, keeps its record, checkpoint and journaled events, and its name; `wasmesh stop` removes it",
		"daemon", abi.FormatOrigin(rec.Origin), "name", rec.Name, "digest", rec.Digest, "journal_events", events, "err", reason)
	kind := ""
	if len(rec.Aliases) > 0 {
		kind = rec.Aliases[0]
	}
	f := &n.failed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[uint64]*failedDaemon)
	}
	f.m[rec.Origin] = &failedDaemon{rec: rec, reason: reason, events: events, kindRef: kind, inc: inc, covered: covered}
}

// checkpointCovers is the input sequence origin's latest checkpoint
// covers (0 without one).
func (n *Node) checkpointCovers(origin uint64) uint64 {
	if ck, err := n.store.LatestSnapshot(origin); err == nil {
		if snap, err := snapshot.Decode(ck.Data, snapshot.DefaultLimits()); err == nil {
			return snap.InputSeq
		}
	}
	return 0
}

// keepFailedJournals tells the journal from before the restart that the
// failed daemons' histories stay needed (beyond what their checkpoints
// cover) although no daemon begins them again.
func (n *Node) keepFailedJournals(j *wal.Journal) {
	n.failed.mu.Lock()
	defer n.failed.mu.Unlock()
	for o, f := range n.failed.m {
		if f.inc == 0 {
			continue // nothing journaled
		}
		j.Keep(o)
		j.Checkpointed(o, f.inc, f.covered)
	}
}

// maxReason bounds the reason a failed daemon is listed and refused with.
const maxReason = 1024

// oneLine keeps an error on one line, and short, for listings and logs.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

func (n *Node) failedCount() int {
	n.failed.mu.Lock()
	defer n.failed.mu.Unlock()
	return len(n.failed.m)
}

// recoveryHeld reports whether a daemon from before the restart still
// needs every segment the journal held then (one waiting for its module;
// a failed daemon's history is kept by itself, keepFailedJournals).
func (n *Node) recoveryHeld() bool {
	n.missing.mu.Lock()
	defer n.missing.mu.Unlock()
	return len(n.missing.pending) > 0
}

func (n *Node) failedInfo(f *failedDaemon) DaemonInfo {
	info := DaemonInfo{
		ID: abi.FormatOrigin(f.rec.Origin), Name: f.rec.Name, Kind: f.kindRef, Digest: f.rec.Digest,
		Node: n.name, NodeID: n.id.String(), Mode: "failed-at-recovery", Failed: true,
		LastError: "recovery at startup failed: " + f.reason,
	}
	if snap, err := n.store.LatestSnapshot(f.rec.Origin); err == nil {
		info.LastCheckpoint = snap.Seq
	}
	return info
}

// failedInfos lists the daemons whose recovery failed, for `ps` and `stats`.
func (n *Node) failedInfos() []DaemonInfo {
	f := &n.failed
	f.mu.Lock()
	list := make([]*failedDaemon, 0, len(f.m))
	for _, d := range f.m {
		list = append(list, d)
	}
	f.mu.Unlock()
	out := make([]DaemonInfo, 0, len(list))
	for _, d := range list {
		out = append(out, n.failedInfo(d))
	}
	return out
}

// findFailed resolves an id or name among the daemons whose recovery failed.
func (n *Node) findFailed(ref string) (*failedDaemon, bool) {
	f := &n.failed
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, err := abi.ParseOrigin(ref); err == nil {
		if d, ok := f.m[o]; ok {
			return d, true
		}
	}
	for _, d := range f.m {
		if d.rec.Name != "" && d.rec.Name == ref {
			return d, true
		}
	}
	return nil, false
}

// refusal is the error of an operation (what) that needs the daemon running.
func (f *failedDaemon) refusal(what string) error {
	who := abi.FormatOrigin(f.rec.Origin)
	ref := who
	if f.rec.Name != "" {
		who = abi.Echo(f.rec.Name) + " (" + who + ")"
		ref = f.rec.Name
	}
	return fmt.Errorf("%w: %s: daemon %s could not be recovered at startup: %s; its record, checkpoint and %d journaled event(s) after it are kept for the next start; `wasmesh stop %s` removes it",
		ErrDaemonFailed, what, who, f.reason, f.events, ref)
}

// stopFailed removes a failed daemon for good: unlike a stop of a running
// daemon, nothing is left to restore from (it could not be brought back),
// so the record, its checkpoints and its journaled events are released and
// its name is free again.
func (n *Node) stopFailed(ctx context.Context, f *failedDaemon) (DaemonInfo, error) {
	info := n.failedInfo(f)
	origin := f.rec.Origin
	n.mu.Lock()
	err := n.store.Delete(origin)
	if err == nil {
		n.failed.mu.Lock()
		delete(n.failed.m, origin)
		n.failed.mu.Unlock()
	}
	n.mu.Unlock()
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("remove failed daemon %s: %w", info.ID, err)
	}
	n.lastCkpt.Delete(origin)
	n.journalForget(origin)
	n.log.Info("failed daemon removed", "daemon", info.ID, "name", info.Name)
	n.kickMeta()
	return info, nil
}

// forgetFailed drops origin from the failed daemons once it runs again (a
// restore brought it back from a snapshot).
func (n *Node) forgetFailed(origin uint64) {
	n.failed.mu.Lock()
	delete(n.failed.m, origin)
	n.failed.mu.Unlock()
}

// failedGauge counts the daemons of this node that are failed: those whose
// recovery failed, those waiting for their module, and running ones that
// failed (a rollback that could not re-instantiate).
func failedGauge(n *Node) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_daemons_failed",
		Help: "Daemons on this node that are failed (ps lists them with the reason): not recovered at startup, waiting for their module, or failed while running."},
		func() float64 {
			c := n.failedCount()
			n.missing.mu.Lock()
			c += len(n.missing.pending)
			n.missing.mu.Unlock()
			if n.rt != nil {
				for _, d := range n.rt.Daemons() {
					if d.Stats().Failed {
						c++
					}
				}
			}
			return float64(c)
		})
}
