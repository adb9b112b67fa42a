package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/wasmesh/wasmesh/internal/cluster"
	"slices"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// KindInfo describes a deployed module.
type KindInfo struct {
	Digest  string   `json:"digest"`
	Aliases []string `json:"aliases,omitempty"`
	Size    int      `json:"size"`
	Mode    string   `json:"mode"`
}

// DaemonInfo is one daemon as operators see it.
type DaemonInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Entity is the daemon's entity id (its ed25519 public key, 64 hex
	// digits): the subject of the permission tokens granted to it.
	Entity          string `json:"entity,omitempty"`
	Kind            string `json:"kind"`
	Digest          string `json:"digest"`
	Node            string `json:"node"`
	NodeID          string `json:"node_id"`
	EventsProcessed uint64 `json:"events_processed"`
	EventsEmitted   uint64 `json:"events_emitted"`
	Errors          uint64 `json:"errors"`
	Snapshots       uint64 `json:"snapshots"`
	MemoryBytes     uint64 `json:"memory_bytes"`
	CPUNanos        int64  `json:"cpu_ns"`
	InputSeq        uint64 `json:"input_seq"`
	ChainSequence   uint64 `json:"chain_sequence"`
	Mode            string `json:"mode"`
	Failed          bool   `json:"failed,omitempty"`
	LastError       string `json:"last_error,omitempty"`
	// Horizon is the highest sequence seen per sender (16-hex-digit
	// origin; 0000000000000000 for external clients).
	Horizon        Seqs   `json:"horizon,omitempty"`
	LastCheckpoint uint64 `json:"last_checkpoint_seq,omitempty"`
	// CheckpointInputSeq is the input sequence the last checkpoint covers:
	// a crash now loses the events after it.
	CheckpointInputSeq uint64 `json:"checkpoint_input_seq"`
	// Status is set in cluster listings (ps): running, failed, or, when
	// the node did not answer, unreachable or offline (see Status*).
	Status string `json:"status,omitempty"`
}

// SpawnRequest asks for a new daemon.
type SpawnRequest struct {
	Kind   string // kind name or digest
	Name   string
	Config []byte
	On     string // node name or id; "" for this node
	// Require places the daemon on a node whose capabilities match the
	// filter (cluster.ParseFilter syntax: "gpu,zone=eu-1,memory_gb>=32"):
	// this node if it matches, else the least loaded (SPEC R-P1).
	Require string
	// Key, when set, is the daemon's identity key file (identity.Save
	// format): an operator-held key, so that other nodes can be prepared
	// for a --no-identity migration. By default the node generates one.
	Key []byte
}

// LogLine is one guest log line.
type LogLine struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Text  string    `json:"text"`
}

// Deploy validates and stores a module, optionally under a kind name. A
// kind name that already names another module is refused (DeployForce
// re-points it).
func (n *Node) Deploy(ctx context.Context, module []byte, kind string) (KindInfo, error) {
	return n.DeployForce(ctx, module, kind, false)
}

// DeployForce is Deploy; force lets kind move from the module it names to
// this one (daemons already running keep their module).
func (n *Node) DeployForce(ctx context.Context, module []byte, kind string, force bool) (KindInfo, error) {
	if kind != "" {
		if err := CheckName("kind", kind); err != nil {
			return KindInfo{}, err
		}
	}
	k, err := n.registerChecked(ctx, module, kind, force)
	switch {
	case errors.Is(err, ErrNameTaken):
		return KindInfo{}, err
	case errors.Is(err, engine.ErrModuleRefused):
		return KindInfo{}, wrap(ErrRefused, err)
	case errors.Is(err, engine.ErrUnknownKind):
		return KindInfo{}, wrap(ErrBadRequest, err)
	case errors.Is(err, engine.ErrShuttingDown):
		return KindInfo{}, wrap(ErrShuttingDown, err)
	case err != nil:
		return KindInfo{}, wrap(ErrRefused, err)
	}
	if _, err := n.layout.saveModule(module); err != nil {
		return KindInfo{}, fmt.Errorf("node: store module: %w", err)
	}
	if kind != "" {
		if err := n.store.SetAlias(kind, string(k.Digest)); err != nil {
			return KindInfo{}, err
		}
	}
	n.log.Info("module deployed", "digest", k.Digest, "kind", kind, "bytes", len(module), "mode", k.Info.Mode)
	return n.kindInfo(k), nil
}

// registerChecked registers module under kind unless kind names another
// module and force is off. The check and the registration are one step
// under deployMu (held for the in-memory registration and compile only,
// never for disk) so two deploys cannot both pass the check.
func (n *Node) registerChecked(ctx context.Context, module []byte, kind string, force bool) (*engine.Kind, error) {
	if kind == "" {
		return n.rt.RegisterModule(ctx, module, kind)
	}
	n.deployMu.Lock()
	defer n.deployMu.Unlock()
	if old, err := n.rt.Kind(kind); err == nil && !force {
		if d := engine.DigestOf(module); old.Digest != d {
			return nil, fmt.Errorf("%w: kind %s already names module %s (this module is %s); deploy with --force to re-point it", ErrNameTaken, abi.Echo(kind), old.Digest, d)
		}
	}
	return n.rt.RegisterModule(ctx, module, kind)
}

func (n *Node) kindInfo(k *engine.Kind) KindInfo {
	al := n.rt.KindAliases(k.Digest)
	slices.Sort(al)
	return KindInfo{Digest: string(k.Digest), Aliases: al, Size: len(k.Bytes()), Mode: k.Info.Mode}
}

// ensureKind resolves a kind name or digest to a module here, fetching it
// by digest from peer (or any other peer) when this node lacks it, and
// learning kind names other nodes were given (the name is registered too).
func (n *Node) ensureKind(ctx context.Context, kindOrDigest string, from *peerRef) (*engine.Kind, error) {
	k, alias, err := n.kindForSpawn(ctx, kindOrDigest, from)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		if _, err := n.Deploy(ctx, k.Bytes(), alias); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Spawn starts a daemon here, or on req.On through the mesh.
func (n *Node) Spawn(ctx context.Context, req SpawnRequest) (DaemonInfo, error) {
	if req.Require != "" {
		if req.On != "" {
			return DaemonInfo{}, fmt.Errorf("%w: --on and --require are exclusive", ErrBadRequest)
		}
		f, err := cluster.ParseFilter(req.Require)
		if err != nil {
			return DaemonInfo{}, fmt.Errorf("%w: --require: %w", ErrBadRequest, err)
		}
		id, err := cluster.Schedule(f, n.mem.Candidates(), n.id.String())
		if err != nil {
			return DaemonInfo{}, noMatch(req.Require, err)
		}
		req.On = id
	}
	if req.On != "" {
		target, err := n.resolveNode(req.On)
		if err != nil {
			return DaemonInfo{}, err
		}
		if target != n.id {
			if req.Key != nil {
				// Keys go straight to the node that runs the daemon, never
				// relayed through another.
				return DaemonInfo{}, fmt.Errorf("%w: a daemon key is given only to the node that runs it: spawn against %s", ErrBadRequest, aimHint(n.nodeInfoOf(target)))
			}
			return n.remoteSpawn(ctx, target, req)
		}
	}
	return n.spawnLocal(ctx, req, nil)
}

func (n *Node) spawnLocal(ctx context.Context, req SpawnRequest, from *peerRef) (DaemonInfo, error) {
	if req.Kind == "" {
		return DaemonInfo{}, fmt.Errorf("%w: a kind or digest is required", ErrBadRequest)
	}
	if err := n.refuseIfDraining("spawn"); err != nil {
		return DaemonInfo{}, err
	}
	if err := validName(req.Name); err != nil {
		return DaemonInfo{}, err
	}
	k, alias, err := n.kindForSpawn(ctx, req.Kind, from)
	if err != nil {
		return DaemonInfo{}, err
	}
	var id identity.Identity
	if req.Key != nil {
		id, err = identity.Parse(req.Key)
		if err != nil {
			return DaemonInfo{}, fmt.Errorf("%w: daemon key: %w", ErrBadRequest, err)
		}
		// One key, one daemon in the whole cluster: two daemons with one
		// identity would fork its chain.
		if _, err := n.store.Get(id.Origin()); err == nil {
			return DaemonInfo{}, fmt.Errorf("%w: daemon %s (this key) already has a record on %s", ErrNameTaken, abi.FormatOrigin(id.Origin()), n.name)
		}
		if hs := n.recordHolders(ctx, id.Origin()); len(hs) > 0 {
			return DaemonInfo{}, fmt.Errorf("%w: daemon %s (this key) already has a record on %s", ErrNameTaken, abi.FormatOrigin(id.Origin()), hs[0])
		}
	} else if id, err = identity.Generate(); err != nil {
		return DaemonInfo{}, err
	}
	d, err := n.spawnWith(ctx, req, k, id)
	if err != nil {
		return DaemonInfo{}, err
	}
	n.keepAlias(ctx, alias, k, d.Origin())
	return n.localInfo(d), nil
}

func (n *Node) spawnWith(ctx context.Context, req SpawnRequest, k *engine.Kind, id identity.Identity) (*engine.Daemon, error) {
	rec := store.Record{
		Origin: id.Origin(), Name: req.Name, Digest: string(k.Digest), Aliases: n.rt.KindAliases(k.Digest),
		Seed: id.Seed(), Config: req.Config, Epoch: 1, Created: time.Now().UTC(),
	}
	// The record goes first so that a name clash refuses before any guest
	// code runs, and so that a crash right after spawn still knows the key.
	n.mu.Lock()
	err := n.store.Create(rec)
	n.mu.Unlock()
	clear(rec.Seed) // the record holds it at rest; this copy is done
	if err != nil {
		if errors.Is(err, store.ErrNameTaken) {
			return nil, wrap(ErrNameTaken, err)
		}
		return nil, err
	}
	// Guest code (start function, _initialize, wasmesh_init) runs without
	// n.mu, which every spawn, stop and restore of the node takes: the
	// record already reserves the name and key, and the guest is bounded
	// only by its CPU budget.
	d, err := n.rt.Spawn(ctx, string(k.Digest), id, engine.SpawnOptions{Name: req.Name, Config: req.Config, KindName: n.kindNameOf(k, req.Kind)})
	if err != nil {
		n.mu.Lock()
		_ = n.store.Delete(rec.Origin)
		n.mu.Unlock()
		return nil, fmt.Errorf("spawn %s: %w", k.Digest, err)
	}
	if err := n.checkpoint(ctx, d, true); err != nil {
		n.log.Warn("first checkpoint failed", "daemon", d.ID(), "err", err)
	}
	n.log.Info("daemon spawned", "daemon", d.ID(), "name", req.Name, "digest", k.Digest)
	n.kickMeta()
	return d, nil
}

func validName(name string) error {
	if name == "" {
		return nil
	}
	if err := CheckName("daemon", name); err != nil {
		return err
	}
	if _, err := abi.ParseOrigin(name); err == nil && len(name) == 16 {
		return fmt.Errorf("%w: daemon name %s looks like a daemon id", ErrBadRequest, abi.Echo(name))
	}
	return nil
}

func (n *Node) localInfo(d *engine.Daemon) DaemonInfo {
	s := d.Stats()
	kind := s.KindName
	if al := n.rt.KindAliases(s.Kind); kind == "" && len(al) > 0 {
		slices.Sort(al)
		kind = al[0]
	}
	info := DaemonInfo{
		ID: d.ID(), Name: d.Name(), Kind: kind, Digest: string(s.Kind), Node: n.name, NodeID: n.id.String(),
		EventsProcessed: s.EventsProcessed, EventsEmitted: s.EventsEmitted, Errors: s.Errors, Snapshots: s.Snapshots,
		MemoryBytes: s.MemoryBytes, CPUNanos: int64(s.CPUTime), InputSeq: s.InputSeq, ChainSequence: s.ChainSequence,
		Mode: s.Mode, Failed: s.Failed, LastError: s.LastError, Horizon: Seqs{},
	}
	e := d.EntityID()
	info.Entity = hex.EncodeToString(e[:])
	for sender, seq := range d.Horizon() {
		info.Horizon[abi.FormatOrigin(sender)] = seq
	}
	if snap, err := n.store.LatestSnapshot(d.Origin()); err == nil {
		info.LastCheckpoint = snap.Seq
	}
	if v, ok := n.lastCkpt.Load(d.Origin()); ok {
		info.CheckpointInputSeq = v.(uint64)
	}
	return info
}

// findLocal resolves an id or a name among this node's daemons.
func (n *Node) findLocal(ref string) (*engine.Daemon, bool) {
	if o, err := abi.ParseOrigin(ref); err == nil {
		if d, err := n.rt.Daemon(o); err == nil {
			return d, true
		}
	}
	for _, d := range n.rt.Daemons() {
		if d.Name() != "" && d.Name() == ref {
			return d, true
		}
	}
	return nil, false
}

// LocalDaemons lists this node's daemons.
func (n *Node) LocalDaemons() []DaemonInfo {
	ds := n.rt.Daemons()
	out := make([]DaemonInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, n.localInfo(d))
	}
	out = append(out, n.missingInfos()...)
	out = append(out, n.failedInfos()...)
	sortInfos(out)
	return out
}

func sortInfos(v []DaemonInfo) {
	slices.SortFunc(v, func(a, b DaemonInfo) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Daemons lists every daemon in the cluster; unreachable peers are
// reported in the second result rather than failing the listing.
func (n *Node) Daemons(ctx context.Context) ([]DaemonInfo, []string) {
	out := withStatus(n.LocalDaemons())
	more, missing := n.listPeers(ctx)
	out = append(out, more...)
	sortInfos(out)
	return out, missing
}

// Daemon returns one daemon's info, wherever it runs.
func (n *Node) Daemon(ctx context.Context, ref string) (DaemonInfo, error) {
	if d, ok := n.findLocal(ref); ok {
		return n.localInfo(d), nil
	}
	if info, ok := n.findMissing(ref); ok {
		return info, nil
	}
	if f, ok := n.findFailed(ref); ok {
		return n.failedInfo(f), nil
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return DaemonInfo{}, err
	}
	return loc.info, nil
}

// Stop stops a daemon wherever it runs. Its record stays (stopped) with
// its last checkpoint, so `restore` can bring it back on this node.
func (n *Node) Stop(ctx context.Context, ref string) (DaemonInfo, error) {
	if d, ok := n.findLocal(ref); ok {
		return n.stopLocal(ctx, d)
	}
	if f, ok := n.findFailed(ref); ok {
		return n.stopFailed(ctx, f)
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return DaemonInfo{}, err
	}
	if err := n.remoteStop(ctx, loc); err != nil {
		return DaemonInfo{}, err
	}
	return loc.info, nil
}

func (n *Node) stopLocal(ctx context.Context, d *engine.Daemon) (DaemonInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkpoint(ctx, d, true); err != nil {
		n.log.Warn("final checkpoint failed", "daemon", d.ID(), "err", err)
	}
	info := n.localInfo(d)
	// Not between an arrival's snapshot and its record (createArrived).
	mu := n.ckptLock(d.Origin())
	mu.Lock()
	if err := n.rt.Stop(ctx, d.Origin()); err != nil {
		mu.Unlock()
		return DaemonInfo{}, wrap(ErrDaemonNotFound, err)
	}
	if err := n.store.Update(d.Origin(), func(r *store.Record) error { r.Stopped = true; return nil }); err != nil {
		n.log.Warn("could not mark record stopped", "daemon", d.ID(), "err", err)
	}
	mu.Unlock()
	n.lastCkpt.Delete(d.Origin())
	n.journalForget(d.Origin())
	n.log.Info("daemon stopped", "daemon", d.ID(), "name", d.Name())
	n.kickMeta()
	if ledger := d.Ledger(); len(ledger) > 0 {
		// A stopped daemon's queues would otherwise fill and block its
		// channels' publishers.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for _, e := range ledger {
				n.chSubs.forget(dlaneKey{e.Channel, d.Origin()})
				n.unsubscribeAtHome(n.ctx, d.Origin(), e.Channel)
			}
		}()
	}
	return info, nil
}

// Snapshot returns a daemon's current state as signed snapshot bytes,
// wherever it runs. A local snapshot also becomes its latest checkpoint.
func (n *Node) Snapshot(ctx context.Context, ref string) ([]byte, DaemonInfo, error) {
	if d, ok := n.findLocal(ref); ok {
		data, err := n.snapshotLocal(ctx, d)
		return data, n.localInfo(d), err
	}
	if f, ok := n.findFailed(ref); ok {
		return nil, DaemonInfo{}, f.refusal("snapshot")
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return nil, DaemonInfo{}, err
	}
	data, err := n.remoteSnapshot(ctx, loc)
	return data, loc.info, err
}

func (n *Node) snapshotLocal(ctx context.Context, d *engine.Daemon) ([]byte, error) {
	mu := n.ckptLock(d.Origin())
	mu.Lock()
	defer mu.Unlock()
	inc := d.Incarnation()
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", d.ID(), err)
	}
	data, err := d.SignSnapshot(snap)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", d.ID(), err)
	}
	if _, err := n.store.PutSnapshot(d.Origin(), time.Now(), data); err != nil {
		n.log.Warn("could not store snapshot", "daemon", d.ID(), "err", err)
	} else {
		n.journalCovered(d, inc, snap.InputSeq)
		n.lastCkpt.Store(d.Origin(), snap.InputSeq)
	}
	n.metrics.snapshotBytes.Add(float64(len(data)))
	return data, nil
}

// Restore continues a daemon from signed snapshot bytes on the node that
// holds the daemon's identity (snapshots carry the public key, never the
// private one): this node if it has the daemon's record, else the one peer
// that does. A running daemon is replaced.
func (n *Node) Restore(ctx context.Context, data []byte, kind string) (DaemonInfo, error) {
	return n.RestoreOn(ctx, data, kind, "")
}

// RestoreOn is Restore on the node named on ("" finds the key's holder).
func (n *Node) RestoreOn(ctx context.Context, data []byte, kind, on string) (DaemonInfo, error) {
	return n.RestoreForce(ctx, data, kind, on, false)
}

// RestoreForce is RestoreOn; force lets a snapshot older than the running
// daemon roll it back (without it that is refused: ErrBadRequest).
func (n *Node) RestoreForce(ctx context.Context, data []byte, kind, on string, force bool) (DaemonInfo, error) {
	snap, err := snapshot.Decode(data, snapshot.DefaultLimits())
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("%w: not a valid snapshot: %w", ErrBadRequest, err)
	}
	origin := abi.OriginHash(snap.EntityID)
	var target nodekey.NodeID
	if on != "" {
		if target, err = n.resolveNode(on); err != nil {
			return DaemonInfo{}, err
		}
	} else if _, err := n.store.Get(origin); err == nil {
		target = n.id
	} else {
		holder, err := n.KeyHolder(ctx, origin)
		if err != nil {
			return DaemonInfo{}, err
		}
		if target, err = nodekey.ParseNodeID(holder.ID); err != nil {
			return DaemonInfo{}, err
		}
	}
	if target == n.id {
		return n.restoreLocal(ctx, data, kind, force)
	}
	p := peerRef{id: target, name: n.peerName(target)}
	var info DaemonInfo
	if err := n.ep.Call(ctx, p.peer(), subRestore, restoreRequest{Snapshot: data, Kind: kind, Force: force}, &info); err != nil {
		if errors.Is(err, meshquic.ErrFrameTooLarge) {
			return DaemonInfo{}, fmt.Errorf("%w: the snapshot is too large to relay; restore it directly on %s", ErrBadRequest, aimHint(n.nodeInfoOf(target)))
		}
		return DaemonInfo{}, fromRemote(err, p.String())
	}
	return info, nil
}

func (n *Node) restoreLocal(ctx context.Context, data []byte, kind string, force bool) (DaemonInfo, error) {
	snap, err := snapshot.Decode(data, snapshot.DefaultLimits())
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("%w: not a valid snapshot: %w", ErrBadRequest, err)
	}
	origin := abi.OriginHash(snap.EntityID)
	digest := string(engine.DigestFromBytes(snap.ModuleDigest))
	if _, err := n.store.Get(origin); errors.Is(err, store.ErrNotFound) {
		if holder, herr := n.KeyHolder(ctx, origin); herr == nil && holder.ID != n.id.String() {
			return DaemonInfo{}, fmt.Errorf("%w: daemon %016x has no record on %s; its key is on %s", ErrNoIdentity, origin, n.name, aimHint(holder))
		}
		return DaemonInfo{}, fmt.Errorf("%w: daemon %016x never ran on %s and no alive node holds its key", ErrNoIdentity, origin, n.name)
	}
	if kind == "" {
		kind = digest
	}
	k, alias, err := n.kindForSpawn(ctx, kind, nil)
	if err != nil {
		return DaemonInfo{}, wrap(ErrUnknownKind, fmt.Errorf("%w (the snapshot is of module %s)", err, digest))
	}
	if string(k.Digest) != digest {
		return DaemonInfo{}, fmt.Errorf("%w: snapshot is of module %s, kind %s is %s", ErrBadRequest, digest, abi.Echo(kind), k.Digest)
	}
	info, err := n.restoreWith(ctx, snap, k, origin, force)
	if err != nil {
		return DaemonInfo{}, err
	}
	n.forgetFailed(origin)
	n.keepAlias(ctx, alias, k, origin)
	return info, nil
}

func (n *Node) restoreWith(ctx context.Context, snap *snapshot.Snapshot, k *engine.Kind, origin uint64, force bool) (DaemonInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rec, err := n.store.Get(origin)
	if errors.Is(err, store.ErrNotFound) {
		return DaemonInfo{}, fmt.Errorf("%w: daemon %016x has no record on %s", ErrNoIdentity, origin, n.name)
	}
	if err != nil {
		return DaemonInfo{}, err
	}
	id, err := identity.FromSeed(rec.Seed)
	if err != nil {
		return DaemonInfo{}, err
	}
	running, replacing := n.findLocal(abi.FormatOrigin(origin))
	if replacing && !force {
		if err := behind(snap, running.Stats(), origin); err != nil {
			return DaemonInfo{}, err
		}
	}
	if replacing {
		_ = n.rt.Stop(ctx, origin)
	}
	d, err := n.rt.SpawnFromSnapshot(ctx, string(k.Digest), id, snap, engine.SpawnOptions{Name: rec.Name, Config: rec.Config})
	if err != nil {
		if replacing {
			// Put the daemon we stopped back, from its last checkpoint.
			if _, _, rerr := n.recoverOne(ctx, rec); rerr != nil {
				n.log.Error("daemon lost after a failed restore", "daemon", abi.FormatOrigin(origin), "err", rerr)
			}
		}
		return DaemonInfo{}, wrap(ErrBadRequest, fmt.Errorf("restore %016x: %w", origin, err))
	}
	if err := n.store.Update(origin, func(r *store.Record) error { r.Stopped = false; r.Digest = string(k.Digest); return nil }); err != nil {
		_ = n.rt.Stop(ctx, origin)
		if errors.Is(err, store.ErrNameTaken) {
			return DaemonInfo{}, wrap(ErrNameTaken, err)
		}
		return DaemonInfo{}, err
	}
	if err := n.checkpoint(ctx, d, true); err != nil {
		n.log.Warn("checkpoint after restore failed", "daemon", d.ID(), "err", err)
	}
	n.log.Info("daemon restored", "daemon", d.ID(), "name", rec.Name, "input_seq", snap.InputSeq)
	n.kickMeta()
	return n.localInfo(d), nil
}

// Logs returns a daemon's retained guest log lines, wherever it runs.
func (n *Node) Logs(ctx context.Context, ref string) ([]LogLine, error) {
	if d, ok := n.findLocal(ref); ok {
		return convertLogs(d.Logs()), nil
	}
	if f, ok := n.findFailed(ref); ok {
		return nil, f.refusal("logs")
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return nil, err
	}
	return n.remoteLogs(ctx, loc)
}

func convertLogs(in []engine.LogLine) []LogLine {
	out := make([]LogLine, len(in))
	for i, l := range in {
		out[i] = LogLine{Time: l.Time, Level: abi.LogLevelName(l.Level), Text: l.Text}
	}
	return out
}
