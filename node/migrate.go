package node

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// subRename carries a migrated daemon's name to its new node.
const subRename = "wasmesh/node/rename/1"

type renameRequest struct {
	Origin uint64 `msgpack:"o"`
	Name   string `msgpack:"n"`
}

// subMigrate asks the node hosting a daemon to orchestrate its migration
// (the source knows the daemon's kind and sees the pause directly).
const subMigrate = "wasmesh/node/migrate/1"

// subMigrateStream is subMigrate with the hosting node's progress relayed:
// the caller sends one MigrateRequest, the host answers with progress
// frames while it migrates, then one frame with the result (or an error
// frame). The node the operator asked shows the same phases and bytes as
// the host would.
const subMigrateStream = "wasmesh/node/migrate/2"

// migrateFrame is one answer frame of subMigrateStream: exactly one field
// is set.
type migrateFrame struct {
	Progress *MigrateProgress `msgpack:"p,omitempty"`
	Result   *MigrateResult   `msgpack:"r,omitempty"`
}

// PhasePreCopy is the progress phase while a large daemon's memory is
// sent ahead as it keeps running (before its snapshot phase).
const PhasePreCopy = "pre-copy"

// MigrateRequest moves a daemon (id or name) to another node (name or id).
type MigrateRequest struct {
	Ref string `json:"daemon"`
	To  string `json:"to"`
	// Require, instead of To, lets the scheduler pick the target: a node
	// that matches the filter, supports migration and is not the source.
	Require    string        `json:"require,omitempty"`
	NoIdentity bool          `json:"no_identity,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
}

// MigrateProgress is reported while a migration runs on this node.
type MigrateProgress struct {
	Phase      string `json:"phase"`
	Attempt    int    `json:"attempt"`
	BytesSent  int    `json:"bytes_sent"`
	BytesTotal int    `json:"bytes_total"`
	// MemoryBytes, in the pre-copy phase, is the daemon's live memory
	// being sent ahead (the bytes fields count the snapshot phase's wire
	// bytes, so the two are not added up).
	MemoryBytes int `json:"memory_bytes,omitempty"`
}

// MigrateResult summarises a finished migration.
type MigrateResult struct {
	Daemon      string  `json:"daemon"`
	From        string  `json:"from"`
	To          string  `json:"to"`
	TotalMillis float64 `json:"total_ms"`
	PauseMillis float64 `json:"pause_ms"`
	// SnapshotBytes is the encoded size of the snapshot taken at the
	// freeze (the delta since the pre-copied base, when PreCopied);
	// WireBytes is what carrying it took on the wire, after compression.
	// PreCopyBytes (below) are wire bytes too; the two add up to what the
	// migration sent.
	SnapshotBytes   int  `json:"snapshot_bytes"`
	WireBytes       int  `json:"wire_bytes"`
	EventsBuffered  int  `json:"events_buffered"`
	EventsForwarded int  `json:"events_forwarded"`
	Attempts        int  `json:"attempts"`
	PreCopied       bool `json:"pre_copied"`
	// PreCopyRounds of dirtied pages followed the base while the daemon
	// ran; PreCopyBytes is what the base and the rounds sent, and
	// Converged that a round got under the dirty threshold (a daemon
	// that dirties memory faster than the link carries it does not).
	PreCopyRounds int  `json:"precopy_rounds"`
	PreCopyBytes  int  `json:"precopy_bytes"`
	Converged     bool `json:"converged"`
	// Subscriptions are the daemon's channel subscriptions, each pointed
	// at the target (SPEC R-C2); a failed one is reported here, not fatal:
	// the target re-asserts it too, and its home finds it on delivery.
	Subscriptions []SubscriptionMoved `json:"subscriptions,omitempty"`
}

// SubscriptionMoved is one ledger entry's outcome in a migration.
type SubscriptionMoved struct {
	Channel string `json:"channel"`
	Error   string `json:"error,omitempty"`
}

// ErrMigration wraps a failed migration; the daemon stays where it was.
var ErrMigration = errors.New("node: migration failed")

func (n *Node) startMigrator(static *ecdh.PrivateKey) error {
	n.qmesh = &driver.QUICMesh{EP: n.ep, StaticKeyOf: n.staticKeyOf, OnLive: n.adoptMigrated}
	m, err := driver.New(driver.Config{
		Runtime: n.rt, Mesh: n.qmesh, StaticKey: static, Logger: n.log.With("component", "migration"),
		Hooks: driver.Hooks{Released: n.forgetMigrated, Admit: func(uint64) error { return n.refuseIfDraining("inbound migration") }},
	})
	if err != nil {
		return err
	}
	n.mig = m
	n.qmesh.Serve(m)
	n.ep.Handle(subRename, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req renameRequest) (struct{}, error) {
		return struct{}{}, toWire(n.adoptName(ctx, req.Origin, req.Name))
	}))
	n.ep.Handle(subMigrate, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req MigrateRequest) (MigrateResult, error) {
		d, ok := n.findLocal(req.Ref)
		if !ok {
			return MigrateResult{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, ErrDaemonNotFound)
		}
		res, err := n.migrateLocal(ctx, d.Origin(), req, nil)
		return res, toWire(err)
	}))
	n.ep.Handle(subMigrateStream, n.serveMigrateStream)
	n.serveDrainRelay()
	return nil
}

// serveMigrateStream runs a migration asked by another node and relays
// its progress. A caller that reads slowly never holds the migration up:
// the migration hands the latest progress over and goes on, so frames in
// between may be skipped, never queued without bound.
func (n *Node) serveMigrateStream(ctx context.Context, s *meshquic.Stream) error {
	var req MigrateRequest
	if err := s.Recv(&req); err != nil {
		return err
	}
	d, ok := n.findLocal(req.Ref)
	if !ok {
		return fmt.Errorf("%w: %w", meshquic.ErrNotHosted, ErrDaemonNotFound)
	}
	latest := make(chan MigrateProgress, 1)
	sent := make(chan error, 1)
	go func() {
		var err error
		for p := range latest {
			if err == nil {
				err = s.Send(migrateFrame{Progress: &p})
			}
		}
		sent <- err
	}()
	res, err := n.migrateLocal(ctx, d.Origin(), req, func(p MigrateProgress) {
		select {
		case latest <- p:
		default:
			// The sender is busy: replace what it has not taken yet.
			select {
			case <-latest:
			default:
			}
			latest <- p
		}
	})
	close(latest)
	if serr := <-sent; serr != nil && err == nil {
		// The caller went away; the migration itself is done.
		n.log.Debug("migration progress not relayed", "daemon", req.Ref, "err", serr)
	}
	if err != nil {
		return toWire(err)
	}
	return s.Send(migrateFrame{Result: &res})
}

// remoteMigrate asks the node hosting a daemon to migrate it, relaying its
// progress; a host that predates subMigrateStream is asked the old way,
// without progress.
func (n *Node) remoteMigrate(ctx context.Context, loc location, req MigrateRequest, progress func(MigrateProgress)) (MigrateResult, error) {
	peer := loc.node.String()
	s, err := n.ep.OpenStream(ctx, loc.node.peer(), subMigrateStream)
	if err != nil {
		return MigrateResult{}, fromRemote(err, peer)
	}
	defer s.Close()
	if err := s.Send(req); err != nil {
		return MigrateResult{}, fromRemote(err, peer)
	}
	if err := s.CloseSend(); err != nil {
		return MigrateResult{}, fromRemote(err, peer)
	}
	for {
		var f migrateFrame
		err := s.Recv(&f)
		switch {
		case errors.Is(err, meshquic.ErrUnknownSubprotocol):
			var res MigrateResult
			if err := n.ep.Call(ctx, loc.node.peer(), subMigrate, req, &res); err != nil {
				return MigrateResult{}, fromRemote(err, peer)
			}
			return res, nil
		case errors.Is(err, io.EOF):
			return MigrateResult{}, fmt.Errorf("%w: node %s ended the migration without a result; check 'wasmesh ps'", ErrUnavailable, peer)
		case err != nil:
			return MigrateResult{}, fromRemote(err, peer)
		case f.Result != nil:
			return *f.Result, nil
		case f.Progress != nil && progress != nil:
			progress(*f.Progress)
		}
	}
}

// staticKeyOf returns a member's X25519 key after checking the node key's
// signature over it, so a sealed identity only ever goes to the node that
// owns the key.
func (n *Node) staticKeyOf(node driver.NodeID) (*ecdh.PublicKey, error) {
	id, err := nodekey.ParseNodeID(string(node))
	if err != nil {
		return nil, err
	}
	m, ok := n.mem.MemberByNodeID(id.String())
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an alive member", ErrUnavailable, node)
	}
	b := nodekey.StaticKeyBinding{NodeKey: m.Meta.NodeKey, StaticKey: m.Meta.X25519Public, Sig: m.Meta.X25519Signature}
	return b.Verify(id)
}

// Migrate moves a daemon; the node hosting it orchestrates (this one, or
// the one it is asked of). progress (may be nil) sees the phases either
// way: the host relays them.
func (n *Node) Migrate(ctx context.Context, req MigrateRequest, progress func(MigrateProgress)) (MigrateResult, error) {
	if (req.To == "") == (req.Require == "") {
		return MigrateResult{}, fmt.Errorf("%w: give exactly one of --to NODE and --require FILTER", ErrBadRequest)
	}
	if d, ok := n.findLocal(req.Ref); ok {
		// A daemon that failed while running (its rollback could not be
		// rebuilt) has no state worth moving: say so before any target is
		// picked or contacted.
		if err := d.Usable(); errors.Is(err, engine.ErrDaemonFailed) {
			return MigrateResult{}, fmt.Errorf("%w: migrate %s: %w; stop it, or restore it from a snapshot", ErrDaemonFailed, req.Ref, err)
		}
		return n.migrateLocal(ctx, d.Origin(), req, progress)
	}
	if f, ok := n.findFailed(req.Ref); ok {
		return MigrateResult{}, f.refusal("migrate")
	}
	loc, err := n.locate(ctx, req.Ref)
	if err != nil {
		return MigrateResult{}, err
	}
	if d, ok := n.localAt(loc); ok {
		return n.migrateLocal(ctx, d.Origin(), req, progress)
	}
	return n.remoteMigrate(ctx, loc, req, progress)
}

func (n *Node) migrateLocal(ctx context.Context, origin uint64, req MigrateRequest, progress func(MigrateProgress)) (MigrateResult, error) {
	if req.Require != "" {
		spec := req.Require
		if spec == "*" { // any node that takes migrations
			spec = ""
		}
		f, err := cluster.ParseFilter(spec)
		if err != nil {
			return MigrateResult{}, fmt.Errorf("%w: --require: %w", ErrBadRequest, err)
		}
		if req.To, err = cluster.MigrationTarget(f, n.mem.Candidates(), n.id.String()); err != nil {
			return MigrateResult{}, noMatch(req.Require, err)
		}
	}
	target, err := n.resolveNode(req.To)
	if err != nil {
		return MigrateResult{}, err
	}
	if target == n.id {
		return MigrateResult{}, fmt.Errorf("%w: daemon %016x already runs on %s", ErrBadRequest, origin, n.name)
	}
	if m, ok := n.mem.MemberByNodeID(target.String()); ok && !m.Meta.MigrationSupported {
		return MigrateResult{}, fmt.Errorf("%w: node %s does not accept migrations", ErrBadRequest, req.To)
	}
	if err := n.refuseDrainingTarget(target, req.To); err != nil {
		return MigrateResult{}, err
	}
	name := ""
	var ledger []snapshot.Subscription
	if d, err := n.rt.Daemon(origin); err == nil {
		name = d.Name()
		ledger = d.Ledger()
	}
	opts := driver.Options{SkipIdentityTransport: req.NoIdentity}
	if progress != nil {
		if d, err := n.rt.Daemon(origin); err == nil && willPreCopy(d) {
			// Pre-copy runs inside StartMigrationWith, before there is a
			// handle to ask: say it started, or a large daemon shows
			// nothing until its (short) final phases.
			progress(MigrateProgress{Phase: PhasePreCopy, Attempt: 1, MemoryBytes: int(d.Stats().MemoryBytes)})
		}
	}
	h, err := n.mig.StartMigrationWith(ctx, origin, driver.NodeID(n.id.String()), driver.NodeID(target.String()), opts)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("%w: %w", ErrMigration, err)
	}
	defer n.activity.trackMigration(abi.FormatOrigin(origin), name, n.name, n.peerName(target), &progress)()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case <-h.Done():
			werr = h.Wait(ctx)
			break wait
		case <-ctx.Done():
			if h.Cancel() == nil {
				// Aborted: wait (briefly) for the source to take it back.
				select {
				case <-h.Done():
				case <-time.After(10 * time.Second):
				}
			}
			werr = ctx.Err()
			break wait
		case <-deadline.C:
			werr = h.WaitTimeout(time.Millisecond)
			break wait
		case <-tick.C:
			if progress != nil {
				st := h.Stats()
				progress(MigrateProgress{Phase: h.Phase().String(), Attempt: h.Attempt(), BytesSent: st.ChunkBytesSent, BytesTotal: st.WireBytes})
			}
		}
	}
	st := h.Stats()
	res := MigrateResult{
		Daemon: abi.FormatOrigin(origin), From: n.name, To: n.peerName(target),
		TotalMillis: ms(h.Duration()), PauseMillis: ms(st.Pause), SnapshotBytes: st.SnapshotBytes, WireBytes: st.WireBytes,
		EventsBuffered: st.EventsBuffered, EventsForwarded: st.EventsForward, Attempts: h.Attempt(),
		PreCopied: st.PreCopied, PreCopyRounds: st.Rounds, Converged: st.Converged,
	}
	for _, b := range st.PreCopyBytes {
		res.PreCopyBytes += b
	}
	n.metrics.observeMigration(res, werr)
	if errors.Is(werr, protocol.ErrPastCutover) {
		// Not a failure: the handover is under way and may complete.
		n.log.Warn("migration past cutover did not confirm in time", "daemon", res.Daemon, "to", res.To)
		return res, fmt.Errorf("%w: past the point of no return and not yet confirmed; check 'wasmesh ps' shortly: %w", ErrMigration, werr)
	}
	if werr != nil {
		return res, fmt.Errorf("%w: %w", ErrMigration, werr)
	}
	res.Subscriptions = n.moveSubscriptions(ctx, origin, target, ledger)
	if name != "" {
		// Best effort: the daemon has moved either way and stays
		// addressable by its id.
		if err := n.ep.Call(ctx, meshquic.PeerID(target), subRename, renameRequest{Origin: origin, Name: name}, nil); err != nil {
			n.log.Warn("migrated daemon's name not taken over", "daemon", res.Daemon, "name", name, "err", err)
		}
	}
	if progress != nil {
		progress(MigrateProgress{Phase: protocol.PhaseComplete.String(), Attempt: h.Attempt(), BytesSent: st.ChunkBytesSent, BytesTotal: st.WireBytes})
	}
	n.log.Info("daemon migrated", "daemon", res.Daemon, "to", res.To, "total_ms", res.TotalMillis, "pause_ms", res.PauseMillis)
	return res, nil
}

// willPreCopy is the driver's default choice (Options.PreCopyThreshold 0):
// a transparent daemon with more live memory than the threshold.
func willPreCopy(d *engine.Daemon) bool {
	return !d.Kind().Cooperative() && int64(d.Stats().MemoryBytes) > driver.DefaultPreCopyThreshold
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// adoptMigrated records a daemon that just went live here, so a restart
// brings it back like any other.
func (n *Node) adoptMigrated(origin uint64) {
	d, err := n.rt.Daemon(origin)
	if err != nil {
		return
	}
	// Its outbox arrived in the snapshot: deliver what the source had not.
	defer n.outbox.wake(origin)
	n.mu.Lock()
	n.takeCarriedNameLocked(d)
	n.mu.Unlock()
	// Module and kind name before the record: the record must never be on
	// disk without the module a restart needs to bring the daemon back.
	if err := n.keepArrivedKind(n.ctx, d); err != nil {
		n.log.Error("migrated daemon's module not stored; a restart would have to fetch it from peers",
			"daemon", d.ID(), "digest", d.Kind().Digest, "err", err)
	}
	rec := store.Record{
		Origin: origin, Digest: string(d.Kind().Digest), Aliases: n.rt.KindAliases(d.Kind().Digest),
		Epoch: uint64(time.Now().UnixNano()), Created: time.Now().UTC(),
	}
	// Replaces the record of a daemon that once lived here and came back.
	// The seed copy is zeroed once the record is written.
	err = d.WithSeed(func(seed []byte) error {
		rec.Seed = seed
		var err error
		rec, err = n.createArrived(n.ctx, d, rec)
		return err
	})
	rec.Seed = nil
	if err != nil {
		n.log.Error("migrated daemon not recorded: a restart of this node would not bring it back", "daemon", d.ID(), "err", err)
		return
	}
	n.log.Info("daemon arrived by migration", "daemon", d.ID(), "name", rec.Name, "kind", d.KindName())
	n.kickMeta()
	if len(d.Ledger()) > 0 {
		// Learn the subscription ids (and point the homes here, should the
		// source not have).
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, 2*chanCallTimeout)
			defer cancel()
			for ch, err := range n.chSubs.resubscribeAll(ctx, d) {
				n.log.Warn("arrived daemon's subscription not re-asserted; the sweep retries", "daemon", d.ID(), "channel", ch, "err", err)
			}
		}()
	}
}

// moveSubscriptions points each ledger entry's home at the target at the
// cutover. The source asks, so the outcome is in its migration summary.
func (n *Node) moveSubscriptions(ctx context.Context, origin uint64, target nodekey.NodeID, ledger []snapshot.Subscription) []SubscriptionMoved {
	var out []SubscriptionMoved
	for _, e := range ledger {
		n.chSubs.forget(dlaneKey{e.Channel, origin})
		cctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
		ans, _, err := n.callHome(cctx, e.Channel, channel.MoveMsg{Channel: e.Channel, Origin: origin, Node: target})
		cancel()
		if err == nil {
			err = chanErr(ans)
		}
		m := SubscriptionMoved{Channel: e.Channel}
		if err != nil {
			m.Error = err.Error()
			n.log.Warn("subscription not moved with its daemon; the target re-asserts it", "daemon", abi.FormatOrigin(origin), "channel", e.Channel, "err", err)
		}
		out = append(out, m)
	}
	return out
}

// forgetMigrated drops the record of a daemon that moved away, so a restart
// does not resurrect a twin.
func (n *Node) forgetMigrated(origin uint64) {
	n.tombstoneName(origin)
	// The daemon's lock, not n.mu: daemons leaving together (a drain)
	// share the store's commits.
	mu := n.ckptLock(origin)
	mu.Lock()
	err := n.store.Delete(origin)
	mu.Unlock()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		n.log.Warn("moved daemon's record not deleted", "daemon", abi.FormatOrigin(origin), "err", err)
	}
	n.lastCkpt.Delete(origin)
	n.journalForget(origin)
	n.kickMeta()
}

// adoptName gives a daemon that migrated here the name it had, unless a
// daemon here already uses it. The name normally came with the daemon's
// snapshot already; this is the older, after-the-move hand-over, kept for
// sources that still send it. It answers once the adoption has recorded
// the daemon (the source may ask before the target's cutover effects ran),
// so that when the source's migrate returns the record exists here.
func (n *Node) adoptName(ctx context.Context, origin uint64, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	d, err := n.rt.Daemon(origin)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDaemonNotFound, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		n.mu.Lock()
		if other, ok := n.findLocal(name); ok && other.Origin() != origin {
			n.mu.Unlock()
			return fmt.Errorf("%w: %s is used by daemon %s here", ErrNameTaken, abi.Echo(name), other.ID())
		}
		err := n.store.Update(origin, func(r *store.Record) error { r.Name = name; return nil })
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			if err == nil {
				d.SetName(name)
				n.kickDir()
			}
			n.mu.Unlock()
			return err
		}
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			// Not recorded in time: name it in memory; the adoption, when
			// it gets there, records the name the daemon has.
			n.mu.Lock()
			d.SetName(name)
			n.mu.Unlock()
			n.kickDir()
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}
