package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	"github.com/wasmesh/wasmesh/internal/wal"
)

// A daemon whose record survived but whose module did not (a data dir
// copied without modules/, a module lost to a crash of an older build that
// kept fetched modules in memory only) is never dropped: recovery sets the
// record aside, reports it loudly, and once the node has joined the cluster
// fetches the module from its peers by digest and brings the daemon back
// from its checkpoint. Until then `ps` lists it as failed with the reason.

// Backoff of the background fetch: first retry soon (peers are often just
// starting too), then slower, never slower than maxModuleRetry.
const (
	firstModuleRetry = 500 * time.Millisecond
	maxModuleRetry   = 30 * time.Second
	moduleFetchWait  = 20 * time.Second // one peer's answer
)

// missingModules holds records set aside at startup for want of a module.
type missingModules struct {
	mu      sync.Mutex
	pending map[uint64]*missingDaemon
}

type missingDaemon struct {
	rec      store.Record
	journal  []wal.Record // events to redo after its checkpoint
	attempts int
	lastErr  string
}

// setAsideIfModuleMissing reports whether rec's module is absent here;
// then it keeps rec for the background fetch instead of recovering it now
// (the mesh is not up during recovery). recover calls it first for every
// record it would bring back.
func (n *Node) setAsideIfModuleMissing(rec store.Record, journal []wal.Record) bool {
	if _, err := n.rt.Kind(rec.Digest); err == nil {
		return false
	}
	n.log.Error("daemon's module is missing from this node's data dir; the daemon is kept and will be brought back from its checkpoint once the module is fetched from a peer by digest",
		"daemon", abi.FormatOrigin(rec.Origin), "name", rec.Name, "digest", rec.Digest)
	m := &n.missing
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		m.pending = make(map[uint64]*missingDaemon)
	}
	m.pending[rec.Origin] = &missingDaemon{rec: rec, journal: journal, lastErr: "not fetched yet: the node is joining the cluster"}
	return true
}

// startModuleFetch runs the background fetch when recovery set records
// aside; New calls it once the node has joined.
func (n *Node) startModuleFetch() {
	n.missing.mu.Lock()
	waiting := len(n.missing.pending)
	n.missing.mu.Unlock()
	if waiting == 0 {
		return
	}
	n.wg.Add(1)
	go n.fetchMissingLoop()
}

func (n *Node) fetchMissingLoop() {
	defer n.wg.Done()
	wait := firstModuleRetry
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
		if n.fetchMissingOnce(n.ctx) == 0 {
			if !n.recoveryHeld() {
				n.releaseRecoveryJournal(n.ctx)
			}
			return
		}
		wait = min(2*wait, maxModuleRetry)
	}
}

// fetchMissingOnce tries every pending daemon once and returns how many
// are still waiting.
func (n *Node) fetchMissingOnce(ctx context.Context) int {
	m := &n.missing
	m.mu.Lock()
	todo := make([]*missingDaemon, 0, len(m.pending))
	for _, p := range m.pending {
		todo = append(todo, p)
	}
	m.mu.Unlock()
	left := 0
	for _, p := range todo {
		err := n.bringBack(ctx, p.rec, p.journal)
		m.mu.Lock()
		if err == nil {
			delete(m.pending, p.rec.Origin)
		} else {
			p.attempts++
			p.lastErr = err.Error()
			left++
		}
		m.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			n.log.Error("daemon still waiting for its module", "daemon", abi.FormatOrigin(p.rec.Origin), "name", p.rec.Name,
				"digest", p.rec.Digest, "attempt", p.attempts, "err", err)
		}
	}
	return left
}

// bringBack fetches rec's module (unless another path brought it in the
// meantime) and recovers the daemon from its checkpoint.
func (n *Node) bringBack(ctx context.Context, rec store.Record, journal []wal.Record) error {
	if _, err := n.rt.Kind(rec.Digest); err != nil {
		mod, err := n.fetchFromPeers(ctx, rec.Digest)
		if err != nil {
			return err
		}
		if _, err := n.Deploy(ctx, mod, ""); err != nil {
			return err
		}
		for _, a := range rec.Aliases {
			if _, err := n.rt.Kind(a); errors.Is(err, engine.ErrUnknownKind) {
				if _, err := n.Deploy(ctx, mod, a); err != nil {
					n.log.Warn("kind name not restored", "kind", a, "err", err)
				}
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// The record may have changed while the module was fetched (a restore,
	// a stop): recover what the store says now.
	cur, err := n.store.Get(rec.Origin)
	if err != nil {
		return err
	}
	if cur.Stopped {
		return nil
	}
	if _, err := n.rt.Daemon(rec.Origin); err == nil {
		return nil // brought back by another path (restore)
	}
	d, seq, err := n.recoverOne(ctx, cur)
	if err != nil {
		return fmt.Errorf("recover after fetching the module: %w", err)
	}
	n.lastCkpt.Store(d.Origin(), d.Stats().InputSeq)
	redone := n.redo(ctx, d, journal)
	if n.wal != nil {
		if err := n.wal.Sync(ctx); err != nil {
			n.log.Error("redone events not journaled again", "daemon", d.ID(), "err", err)
		}
	}
	st := d.Stats()
	n.log.Info("daemon recovered", "daemon", d.ID(), "name", cur.Name, "digest", cur.Digest,
		"checkpoint_seq", seq, "journal_events", redone, "input_seq", st.InputSeq, "module", "fetched from a peer")
	n.kickMeta()
	return nil
}

// fetchFromPeers asks each alive peer in turn for the module by digest;
// the transport checks the bytes against the digest.
func (n *Node) fetchFromPeers(ctx context.Context, digest string) ([]byte, error) {
	peers := n.peers()
	if len(peers) == 0 {
		return nil, fmt.Errorf("%w: no alive peer to fetch module %s from", ErrUnavailable, digest)
	}
	var errs []error
	for _, p := range peers {
		cctx, cancel := context.WithTimeout(ctx, moduleFetchWait)
		mod, err := n.ep.FetchModule(cctx, p.peer(), digest)
		cancel()
		if err == nil {
			n.log.Info("fetched missing module from peer", "digest", digest, "peer", p.String(), "bytes", len(mod))
			return mod, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return nil, fmt.Errorf("%w: module %s: %w", ErrUnknownKind, digest, errors.Join(errs...))
}

// missingInfos lists the daemons waiting for their module, for `ps` and
// `stats`: failed, with the reason as their last error.
func (n *Node) missingInfos() []DaemonInfo {
	m := &n.missing
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]DaemonInfo, 0, len(m.pending))
	for _, p := range m.pending {
		kind := ""
		if len(p.rec.Aliases) > 0 {
			kind = p.rec.Aliases[0]
		}
		out = append(out, DaemonInfo{
			ID: abi.FormatOrigin(p.rec.Origin), Name: p.rec.Name, Kind: kind, Digest: p.rec.Digest,
			Node: n.name, NodeID: n.id.String(), Mode: "waiting-for-module", Failed: true,
			LastError: fmt.Sprintf("module %s missing on this node; fetching it from peers (attempts %d: %s)", p.rec.Digest, p.attempts, p.lastErr),
		})
	}
	return out
}

// findMissing resolves an id or name among the daemons waiting for their
// module.
func (n *Node) findMissing(ref string) (DaemonInfo, bool) {
	for _, info := range n.missingInfos() {
		if info.ID == ref || (info.Name != "" && info.Name == ref) {
			return info, true
		}
	}
	return DaemonInfo{}, false
}
