package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Addressing: names through a move, kind names across the cluster, and
// finding the node that holds a daemon's key.
const (
	// subKind asks a peer which module digest a kind name means there.
	subKind = "wasmesh/node/kind/1"
	// subRecord asks a peer whether it holds a daemon's record (its key).
	subRecord = "wasmesh/node/record/1"
	// subRestore hands a snapshot to the node that holds the daemon's key.
	subRestore = "wasmesh/node/restore/1"
	// subExpect prepares a node to receive a daemon by migration.
	subExpect = "wasmesh/node/expect/1"
)

// maxFollow bounds how many "moved" answers a lookup follows (a daemon
// that moved n1 → n2 → n3 is two hops from n1).
const maxFollow = 4

// maxMovedNames bounds the name tombstones one node keeps.
const maxMovedNames = 4096

type kindRequest struct {
	Name string `msgpack:"n"`
}

type kindResponse struct {
	Digest string `msgpack:"d"`
}

type recordRequest struct {
	Origin uint64 `msgpack:"o"`
}

type recordResponse struct {
	Has     bool `msgpack:"h"`
	Stopped bool `msgpack:"s"`
}

type restoreRequest struct {
	Snapshot []byte `msgpack:"s"`
	Kind     string `msgpack:"k"`
	Force    bool   `msgpack:"f,omitempty"`
}

// movedNames remembers, on the node a daemon left, which name it had:
// a later lookup by that name answers "moved" exactly like one by id.
// The zero value is ready to use.
type movedNames struct {
	mu    sync.Mutex
	m     map[string]uint64
	order []string // insertion order, for the bound
}

func (t *movedNames) set(name string, origin uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]uint64)
	}
	if _, ok := t.m[name]; !ok {
		t.order = append(t.order, name)
	}
	t.m[name] = origin
	for len(t.order) > maxMovedNames {
		delete(t.m, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *movedNames) forget(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[name]; ok {
		delete(t.m, name)
		t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == name })
	}
}

func (t *movedNames) get(name string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.m[name]
	return o, ok
}

// tombstoneName keeps a migrated daemon's name next to its moved-route
// tombstone; it runs on the source before the record goes.
func (n *Node) tombstoneName(origin uint64) {
	if rec, err := n.store.Get(origin); err == nil && rec.Name != "" {
		n.moved.set(rec.Name, origin)
	}
}

// movedRef reports where a daemon this node gave away went, by id or by
// the name it had here. A name used again by a daemon here is answered by
// findLocal first, so the tombstone never hides a live daemon.
func (n *Node) movedRef(ref string) (origin uint64, r meshquic.Route, ok bool) {
	o, err := abi.ParseOrigin(ref)
	if err != nil {
		if o, ok = n.moved.get(ref); !ok {
			return 0, meshquic.Route{}, false
		}
	}
	r, ok = n.ep.Routes().Moved(o)
	return o, r, ok
}

// answerLookup is this node's side of subLookup.
func (n *Node) answerLookup(ref string) lookupResponse {
	if d, ok := n.findLocal(ref); ok {
		// Owner is 0 until the record exists: a daemon restored by a
		// migration that has not gone live yet is not the owner.
		resp := lookupResponse{Found: true, Epoch: 1, Info: n.localInfo(d)}
		if rec, err := n.store.Get(d.Origin()); err == nil {
			resp.Epoch, resp.Owner = rec.Epoch, rec.Epoch
		}
		return resp
	}
	if o, r, ok := n.movedRef(ref); ok {
		return lookupResponse{MovedTo: r.Node.String(), Origin: o, Epoch: r.Epoch}
	}
	if f, ok := n.findFailed(ref); ok {
		// Found, so that a send or stop through another node reaches this
		// one and gets the failure's reason (meshOps), not "not found".
		return lookupResponse{Found: true, Epoch: f.rec.Epoch, Owner: f.rec.Epoch, Info: n.failedInfo(f)}
	}
	return lookupResponse{}
}

// movedAnswer is a lookup's "it moved to To" (by id).
type movedAnswer struct {
	origin uint64
	to     nodekey.NodeID
	epoch  uint64
}

func (m *movedAnswer) Error() string {
	return fmt.Sprintf("daemon %016x moved to %s", m.origin, m.to)
}

// follow looks ref up at p and follows "moved" answers to the daemon's
// current node; a move to this node resolves to the local daemon. A name
// followed to a daemon that does not carry it (yet: the name may still be
// on its way, or stayed behind because the new node has another daemon of
// that name) is a weak hit: locate prefers any daemon that has the name.
func (n *Node) follow(ctx context.Context, p peerRef, ref string) (location, error) {
	name := ""
	if _, err := abi.ParseOrigin(ref); err != nil {
		name = ref
	}
	weak := func(loc location) location {
		loc.weak = name != "" && loc.info.Name != name
		return loc
	}
	for hop := 0; ; hop++ {
		loc, err := n.lookupAt(ctx, p, ref)
		var mv *movedAnswer
		if !errors.As(err, &mv) {
			if err != nil || hop == 0 {
				return loc, err
			}
			return weak(loc), nil
		}
		if mv.to == n.id {
			d, derr := n.rt.Daemon(mv.origin)
			if derr != nil {
				return location{}, errNotThere
			}
			return weak(location{node: peerRef{id: n.id, name: n.name}, epoch: mv.epoch, owner: ^uint64(0), info: n.localInfo(d)}), nil
		}
		if hop >= maxFollow {
			return location{}, errNotThere
		}
		p, ref = peerRef{id: mv.to, name: n.peerName(mv.to)}, abi.FormatOrigin(mv.origin)
	}
}

// pickLocations reduces lookup hits to one per daemon: while a migration
// is in flight the same daemon answers from its source and its target, and
// the live owner (the highest record epoch) is the one to talk to. Weak
// hits count only when no daemon carries the name itself. Distinct daemons
// under one name stay distinct (ambiguous).
func pickLocations(found []location) []location {
	strong := slices.DeleteFunc(slices.Clone(found), func(l location) bool { return l.weak })
	if len(strong) > 0 {
		found = strong
	}
	best := map[string]location{}
	for _, l := range found {
		cur, ok := best[l.info.ID]
		if !ok || l.owner > cur.owner || (l.owner == cur.owner && l.node.String() < cur.node.String()) {
			best[l.info.ID] = l
		}
	}
	out := make([]location, 0, len(best))
	for _, l := range best {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b location) int { return strings.Compare(a.info.ID, b.info.ID) })
	return out
}

func (n *Node) serveAddressing() {
	n.ep.Handle(subKind, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req kindRequest) (kindResponse, error) {
		if strings.HasPrefix(req.Name, "sha256:") {
			return kindResponse{}, nil
		}
		k, err := n.rt.Kind(req.Name)
		if err != nil {
			return kindResponse{}, nil
		}
		return kindResponse{Digest: string(k.Digest)}, nil
	}))
	n.ep.Handle(subRecord, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req recordRequest) (recordResponse, error) {
		rec, err := n.store.Get(req.Origin)
		if err != nil {
			return recordResponse{}, nil
		}
		return recordResponse{Has: true, Stopped: rec.Stopped}, nil
	}))
	n.ep.Handle(subRestore, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req restoreRequest) (DaemonInfo, error) {
		info, err := n.restoreLocal(ctx, req.Snapshot, req.Kind, req.Force)
		return info, toWire(err)
	}))
	n.ep.Handle(subExpect, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req ExpectRequest) (ExpectResult, error) {
		req.On = ""
		res, err := n.expectLocal(ctx, req)
		return res, toWire(err)
	}))
}

// kindHolders asks every alive peer what the kind name means there.
func (n *Node) kindHolders(ctx context.Context, name string) map[string][]peerRef {
	ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string][]peerRef{}
	)
	for _, p := range n.peers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp kindResponse
			if err := n.ep.Call(ctx, p.peer(), subKind, kindRequest{Name: name}, &resp); err != nil || resp.Digest == "" {
				return
			}
			mu.Lock()
			out[resp.Digest] = append(out[resp.Digest], p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// ResolveKind says which digest a kind name (or digest) means in the
// cluster: here if deployed here, else what the peers that know it agree on.
func (n *Node) ResolveKind(ctx context.Context, kind string) (string, error) {
	if strings.HasPrefix(kind, "sha256:") {
		return kind, nil
	}
	if k, err := n.rt.Kind(kind); err == nil {
		return string(k.Digest), nil
	}
	dg, _, err := n.clusterKind(ctx, kind)
	return dg, err
}

func (n *Node) clusterKind(ctx context.Context, name string) (string, []peerRef, error) {
	holders := n.kindHolders(ctx, name)
	switch len(holders) {
	case 0:
		return "", nil, fmt.Errorf("%w: kind %s is not deployed on any of the %d alive node(s) (deploy it first: wasmesh deploy MODULE.wasm --kind NAME)",
			ErrUnknownKind, abi.Echo(name), len(n.peers())+1)
	case 1:
		for dg, ps := range holders {
			return dg, ps, nil
		}
	}
	var where []string
	for dg, ps := range holders {
		for _, p := range ps {
			where = append(where, dg+"@"+p.String())
		}
	}
	slices.Sort(where)
	return "", nil, fmt.Errorf("%w: kind %s names different modules on different nodes (%s); use the digest",
		ErrAmbiguous, abi.Echo(name), strings.Join(where, ", "))
}

// fetchModule gets a module by digest from the first of from (then every
// other alive peer) that has it, and stores it here by digest only.
func (n *Node) fetchModule(ctx context.Context, digest string, from []peerRef) (*engine.Kind, error) {
	tried := map[nodekey.NodeID]bool{}
	var errs []error
	for _, p := range append(slices.Clone(from), n.peers()...) {
		if tried[p.id] || p.id == n.id {
			continue
		}
		tried[p.id] = true
		mod, err := n.ep.FetchModule(ctx, p.peer(), digest)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		n.log.Info("fetched module from peer", "digest", digest, "peer", p.String(), "bytes", len(mod))
		if _, err := n.Deploy(ctx, mod, ""); err != nil {
			return nil, err
		}
		return n.rt.Kind(digest)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: module %s is on no alive node (deploy it first: wasmesh deploy MODULE.wasm)", ErrUnknownKind, digest)
	}
	return nil, wrap(ErrUnknownKind, fmt.Errorf("fetch module %s: %w", digest, errors.Join(errs...)))
}

// kindForSpawn resolves a kind name or digest to a module here, fetching it
// from the peers that have it. A kind name learnt from peers is returned as
// alias and is NOT registered yet: the caller keeps it only once the spawn
// succeeded, so a failed spawn leaves no kind name behind.
func (n *Node) kindForSpawn(ctx context.Context, kind string, from *peerRef) (k *engine.Kind, alias string, err error) {
	if k, err := n.rt.Kind(kind); err == nil {
		return k, "", nil
	}
	var hint []peerRef
	if from != nil {
		hint = append(hint, *from)
	}
	digest := kind
	if !strings.HasPrefix(kind, "sha256:") {
		var ps []peerRef
		if digest, ps, err = n.clusterKind(ctx, kind); err != nil {
			return nil, "", err
		}
		hint, alias = append(hint, ps...), kind
		if k, err := n.rt.Kind(digest); err == nil {
			return k, alias, nil
		}
	}
	k, err = n.fetchModule(ctx, digest, hint)
	return k, alias, err
}

// keepAlias registers a kind name learnt from peers after the daemon that
// needed it started, and records it on the daemon's record.
func (n *Node) keepAlias(ctx context.Context, alias string, k *engine.Kind, origin uint64) {
	if alias == "" {
		return
	}
	if cur, err := n.rt.Kind(alias); err == nil {
		if cur.Digest != k.Digest {
			n.log.Warn("kind name not kept: it means another module here", "kind", alias, "digest", cur.Digest)
		}
		return
	}
	if _, err := n.Deploy(ctx, k.Bytes(), alias); err != nil {
		n.log.Warn("kind name not kept", "kind", alias, "err", err)
		return
	}
	aliases := n.rt.KindAliases(k.Digest)
	n.mu.Lock()
	err := n.store.Update(origin, func(r *store.Record) error { r.Aliases = aliases; return nil })
	n.mu.Unlock()
	if err != nil {
		n.log.Debug("kind name not recorded on the daemon", "kind", alias, "err", err)
	}
}

// recordHolders asks every alive peer whether it holds origin's record.
func (n *Node) recordHolders(ctx context.Context, origin uint64) []peerRef {
	ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out []peerRef
	)
	for _, p := range n.peers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp recordResponse
			if err := n.ep.Call(ctx, p.peer(), subRecord, recordRequest{Origin: origin}, &resp); err != nil || !resp.Has {
				return
			}
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b peerRef) int { return strings.Compare(a.name, b.name) })
	return out
}

// KeyHolder names the node that holds a daemon's record (and so its key):
// this node, or the one peer that answers it does.
func (n *Node) KeyHolder(ctx context.Context, origin uint64) (NodeInfo, error) {
	if _, err := n.store.Get(origin); err == nil {
		return n.nodeInfoOf(n.id), nil
	}
	hs := n.recordHolders(ctx, origin)
	switch len(hs) {
	case 0:
		return NodeInfo{}, fmt.Errorf("%w: no alive node holds the key of daemon %016x (it never ran, or its node is down)", ErrNoIdentity, origin)
	case 1:
		return n.nodeInfoOf(hs[0].id), nil
	}
	var names []string
	for _, h := range hs {
		names = append(names, h.String())
	}
	return NodeInfo{}, fmt.Errorf("%w: daemon %016x has records on %s; choose one with --on NODE", ErrAmbiguous, origin, strings.Join(names, ", "))
}

// nodeInfoOf is one member's NodeInfo (empty Name when not a member).
func (n *Node) nodeInfoOf(id nodekey.NodeID) NodeInfo {
	for _, ni := range n.Nodes() {
		if ni.ID == id.String() {
			return ni
		}
	}
	return NodeInfo{ID: id.String(), Name: n.peerName(id)}
}

// aimHint is how an error tells the operator where to aim.
func aimHint(ni NodeInfo) string {
	if ni.Admin != "" {
		return fmt.Sprintf("node %s (admin %s: --on %s or --node %s)", ni.Name, ni.Admin, ni.Name, ni.Admin)
	}
	return fmt.Sprintf("node %s (--on %s)", ni.Name, ni.Name)
}

// localAt returns the local daemon when locate resolved to this node (a
// daemon that moved here before its name did).
func (n *Node) localAt(loc location) (*engine.Daemon, bool) {
	if loc.node.id != n.id {
		return nil, false
	}
	o, err := abi.ParseOrigin(loc.info.ID)
	if err != nil {
		return nil, false
	}
	d, err := n.rt.Daemon(o)
	return d, err == nil
}
