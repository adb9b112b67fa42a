package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/cluster"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Node-level subprotocols on top of the transport's remote operations.
//
// Routing choice: a node does not announce its daemons. NodeMeta has a
// 512-byte gossip budget, far too small for a route list, and gossiping
// every spawn would cost every node work for daemons it never talks to.
// Instead, a node that does not know where a daemon lives asks the
// daemon's homes in the location directory (directory.go) and then the
// node they name, and only when they do not know fans a Lookup out to the
// alive members; it caches the answer in the transport's Routes, and drops
// the entry when the node it points at says "not hosted". The migration
// cutover updates Routes and answers stragglers with "moved".
const (
	subLookup = "wasmesh/node/lookup/1"
	subList   = "wasmesh/node/list/1"
	subLogs   = "wasmesh/node/logs/1"
)

// fanoutTimeout bounds a lookup or listing across the cluster, so one
// unreachable member cannot stall an operator command.
const fanoutTimeout = 3 * time.Second

type lookupRequest struct {
	Ref string `msgpack:"r"`
}

type lookupResponse struct {
	Found bool       `msgpack:"f"`
	Epoch uint64     `msgpack:"e"`
	Info  DaemonInfo `msgpack:"i"`
	// Owner is the hosting node's record epoch, 0 while the daemon is only
	// restored by a migration that has not gone live: of two nodes that
	// answer for one daemon, the higher Owner is the live one.
	Owner uint64 `msgpack:"w,omitempty"`
	// MovedTo (a node id) and Origin answer for a daemon (id or name) that
	// migrated away from the node asked.
	MovedTo string `msgpack:"mt,omitempty"`
	Origin  uint64 `msgpack:"o,omitempty"`
}

type listRequest struct{}

type listResponse struct {
	Daemons []DaemonInfo `msgpack:"d"`
}

type logsRequest struct {
	Origin uint64 `msgpack:"o"`
}

type wireLog struct {
	Time  int64  `msgpack:"t"`
	Level string `msgpack:"l"`
	Text  string `msgpack:"x"`
}

type logsResponse struct {
	Lines []wireLog `msgpack:"l"`
}

type peerRef struct {
	id   nodekey.NodeID
	name string
}

func (p peerRef) peer() meshquic.Peer { return meshquic.PeerID(p.id) }

func (p peerRef) String() string {
	if p.name != "" {
		return p.name
	}
	return p.id.String()
}

// location is where a daemon was found.
type location struct {
	node  peerRef
	epoch uint64
	owner uint64 // see lookupResponse.Owner
	weak  bool   // found by following a name to a daemon without it (see follow)
	info  DaemonInfo
}

func (n *Node) serveMesh() {
	n.dir = newDirState(n.metrics.Registry)
	n.ep.ServeLocalOps((*meshOps)(n))
	n.serveDirectory()
	n.ep.Handle(subLookup, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req lookupRequest) (lookupResponse, error) {
		return n.answerLookup(req.Ref), nil
	}))
	n.serveAddressing()
	n.ep.Handle(subList, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, _ listRequest) (listResponse, error) {
		return listResponse{Daemons: n.LocalDaemons()}, nil
	}))
	n.ep.Handle(subLogs, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req logsRequest) (logsResponse, error) {
		d, err := n.rt.Daemon(req.Origin)
		if err != nil {
			return logsResponse{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
		}
		var out logsResponse
		for _, l := range convertLogs(d.Logs()) {
			out.Lines = append(out.Lines, wireLog{Time: l.Time.UnixNano(), Level: l.Level, Text: l.Text})
		}
		return out, nil
	}))
}

// peers returns the alive, verified members other than this node that
// announced a QUIC address.
func (n *Node) peers() []peerRef {
	var out []peerRef
	for _, m := range n.mem.Members() {
		if m.Local || m.State != cluster.StateAlive || m.MetaErr != nil || m.Meta.QUICAddr == "" || !m.Verified {
			continue
		}
		id, err := nodekey.ParseNodeID(m.Meta.NodeID)
		if err != nil || id == n.id {
			continue
		}
		out = append(out, peerRef{id: id, name: m.Name})
	}
	slices.SortFunc(out, func(a, b peerRef) int { return strings.Compare(a.name, b.name) })
	return out
}

func (n *Node) peerName(id nodekey.NodeID) string {
	if id == n.id {
		return n.name
	}
	if m, ok := n.mem.MemberByNodeID(id.String()); ok {
		return m.Name
	}
	return id.String()
}

// verifyMember is cluster.Config.Verify: a member is trusted with work once
// a mutual TLS handshake at its announced QUIC address proved a certificate
// of this cluster's CA for the node id it announces. The gossip secret alone
// does not make a member.
func (n *Node) verifyMember(ctx context.Context, m cluster.Member) error {
	id, err := nodekey.ParseNodeID(m.Meta.NodeID)
	if err != nil {
		return err
	}
	return n.ep.Verify(ctx, id, m.Meta.QUICAddr)
}

// watchMembers keeps the transport's address book in step with membership.
func (n *Node) watchMembers() {
	defer n.wg.Done()
	n.wg.Add(1)
	go n.dirLoop()
	n.kickDir() // registers what recovery brought back
	for ev := range n.mem.Subscribe(n.ctx) {
		// Homes follow membership: re-home (a round with an unchanged
		// member set and no local change sends nothing).
		n.kickDir()
		n.chHome.membersChanged()
		m := ev.Member
		if m.Local || m.MetaErr != nil {
			continue
		}
		id, err := nodekey.ParseNodeID(m.Meta.NodeID)
		if err != nil {
			continue
		}
		switch {
		case ev.Type == cluster.EventLeave:
			n.ep.RemovePeer(id)
			n.mig.PeerDown(driver.NodeID(id.String()))
			n.log.Info("peer left", "peer", m.Name, "state", m.State.String())
		case m.Meta.QUICAddr != "":
			if old, ok := n.ep.PeerAddrOf(id); !ok || old != m.Meta.QUICAddr {
				n.ep.SetPeerAddr(id, m.Meta.QUICAddr)
				n.log.Info("peer joined", "peer", m.Name, "id", id.String(), "quic", m.Meta.QUICAddr)
			}
		}
	}
}

func (n *Node) kickMeta() {
	// Every change of the local daemons announces the load: the
	// directory hears of it the same way.
	n.kickDir()
	select {
	case n.metaKick <- struct{}{}:
	default:
	}
}

// publishMeta re-announces the load (daemon count) after changes; kicks
// coalesce, so a burst of spawns costs one announcement.
func (n *Node) publishMeta() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.metaKick:
		}
		meta := n.meta
		meta.Load = len(n.rt.Daemons())
		meta.AdminURL = n.AdminURL()
		meta.Draining = n.draining.Load()
		ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
		if err := n.mem.UpdateMeta(ctx, meta); err != nil && !errors.Is(err, cluster.ErrAnnounceUnconfirmed) && n.ctx.Err() == nil {
			n.log.Warn("announce failed", "err", err)
		}
		cancel()
	}
}

// resolveNode finds a member by name, id, or unique id prefix.
func (n *Node) resolveNode(ref string) (nodekey.NodeID, error) {
	var hits []nodekey.NodeID
	unverified := 0
	for _, m := range n.mem.Members() {
		if m.State != cluster.StateAlive || m.MetaErr != nil {
			continue
		}
		if m.Name == ref || m.Meta.NodeID == ref || (len(ref) >= 4 && strings.HasPrefix(m.Meta.NodeID, ref)) {
			if !m.Verified {
				// Not a member until it proves a certificate of the CA:
				// no work goes there, even when named explicitly.
				unverified++
				continue
			}
			id, err := nodekey.ParseNodeID(m.Meta.NodeID)
			if err == nil {
				hits = append(hits, id)
			}
		}
	}
	switch len(hits) {
	case 0:
		if unverified > 0 {
			return nodekey.NodeID{}, fmt.Errorf("%w: member %s is unverified: it has not proved a certificate of the cluster CA (see wasmesh nodes)", ErrUnknownNode, abi.Echo(ref))
		}
		return nodekey.NodeID{}, fmt.Errorf("%w: no alive member named %s (see wasmesh nodes)", ErrUnknownNode, abi.Echo(ref))
	case 1:
		return hits[0], nil
	}
	return nodekey.NodeID{}, fmt.Errorf("%w: %s matches %d members", ErrUnknownNode, abi.Echo(ref), len(hits))
}

// locate finds a daemon that is not local: through the cached route when
// the reference is an id, through this node's own "moved" tombstone,
// through the directory's homes, else by asking every alive peer. "Moved"
// answers are followed to the daemon's
// new node, and a daemon found on both sides of a move in flight resolves
// to its live owner, so a name stays usable through every phase of a
// migration. The result may be this node (a daemon that just moved here).
func (n *Node) locate(ctx context.Context, ref string) (location, error) {
	if ref == "" {
		return location{}, fmt.Errorf("%w: empty daemon reference", ErrBadRequest)
	}
	if o, err := abi.ParseOrigin(ref); err == nil {
		if r, ok := n.ep.Routes().Lookup(o); ok && r.Node != n.id {
			p := peerRef{id: r.Node, name: n.peerName(r.Node)}
			if loc, err := n.follow(ctx, p, ref); err == nil {
				return loc, nil
			}
			// Stale or unreachable: forget it and search.
			n.ep.Routes().Delete(o, r.Epoch)
		}
	}
	if loc, ok := n.locateResolved(withLookupKind(ctx, lookupFollow), ref); ok {
		return loc, nil
	}
	var (
		mu    sync.Mutex
		found []location
		wg    sync.WaitGroup
	)
	var silent []string // nodes that did not answer: the daemon may be there
	if o, r, ok := n.movedRef(ref); ok && r.Node != n.id {
		// This node gave the daemon away: straight to it, if the name went
		// along; else it is a weak hit (the cluster may have another daemon
		// of that name, or the name is still on its way).
		to := peerRef{id: r.Node, name: n.peerName(r.Node)}
		loc, err := n.follow(withLookupKind(ctx, lookupFollow), to, abi.FormatOrigin(o))
		if err != nil && !errors.Is(err, errNotThere) {
			silent = append(silent, to.String())
		}
		if err == nil {
			_, isID := abi.ParseOrigin(ref)
			if isID == nil || loc.info.Name == ref {
				return n.cacheRoute(loc), nil
			}
			loc.weak = true
			found = append(found, loc)
		}
	}
	if len(found) == 0 {
		if loc, ok := n.locateHomes(ctx, ref); ok {
			return loc, nil
		}
	}
	// The last resort: the homes did not answer or do not know it.
	n.dir.fanouts.Add(1)
	ctx, cancel := context.WithTimeout(withLookupKind(ctx, lookupFanout), fanoutTimeout)
	defer cancel()
	peers := n.peers()
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loc, err := n.follow(ctx, p, ref)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				found = append(found, loc)
			case !errors.Is(err, errNotThere) && !slices.Contains(silent, p.String()):
				silent = append(silent, p.String())
			}
		}()
	}
	wg.Wait()
	found = pickLocations(found)
	switch {
	case len(found) == 0 && len(silent) > 0:
		// "Not found" would be a guess: a script would take it to mean
		// the daemon is gone while its node is only cut off.
		slices.Sort(silent)
		return location{}, fmt.Errorf("%w: %s is not on any node that answered, and %s did not answer: it may be there; retry",
			ErrUnavailable, abi.Echo(ref), strings.Join(silent, ", "))
	case len(found) == 0:
		return location{}, fmt.Errorf("%w: %s is not on any of the %d alive node(s)", ErrDaemonNotFound, abi.Echo(ref), len(peers)+1)
	case len(found) == 1:
		if o, err := abi.ParseOrigin(found[0].info.ID); err == nil && found[0].info.Name == ref && !found[0].weak {
			n.resolved.set(ref, o)
		}
		return n.cacheRoute(found[0]), nil
	}
	var where []string
	for _, l := range found {
		where = append(where, l.info.ID+"@"+l.node.String())
	}
	slices.Sort(where)
	return location{}, fmt.Errorf("%w: %s names %d daemons (%s); use the id", ErrAmbiguous, abi.Echo(ref), len(found), strings.Join(where, ", "))
}

// locateResolved follows the route of the daemon a name last resolved to.
// Names are unique in the cluster, so while that daemon answers under the
// name it is the one; anything else (stopped, renamed away, unreachable)
// forgets it and the caller asks every peer.
func (n *Node) locateResolved(ctx context.Context, name string) (location, bool) {
	if _, err := abi.ParseOrigin(name); err == nil {
		return location{}, false
	}
	o, ok := n.resolved.get(name)
	if !ok {
		return location{}, false
	}
	if r, ok := n.ep.Routes().Lookup(o); ok && r.Node != n.id {
		// No longer than the fan-out it saves would have waited.
		ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
		defer cancel()
		loc, err := n.follow(ctx, peerRef{id: r.Node, name: n.peerName(r.Node)}, abi.FormatOrigin(o))
		if err == nil && loc.info.Name == name {
			return n.cacheRoute(loc), true
		}
	}
	n.resolved.forget(name)
	return location{}, false
}

func (n *Node) cacheRoute(loc location) location {
	if loc.node.id == n.id {
		return loc
	}
	if o, err := abi.ParseOrigin(loc.info.ID); err == nil {
		n.ep.Routes().Set(o, loc.node.id, loc.epoch)
	}
	return loc
}

var errNotThere = errors.New("not hosted there")

// lookupAt asks p for ref; a "moved" answer is a *movedAnswer error.
func (n *Node) lookupAt(ctx context.Context, p peerRef, ref string) (location, error) {
	var resp lookupResponse
	n.countLookup(ctx)
	if err := n.ep.Call(ctx, p.peer(), subLookup, lookupRequest{Ref: ref}, &resp); err != nil {
		return location{}, err
	}
	if !resp.Found {
		if resp.MovedTo != "" {
			if to, err := nodekey.ParseNodeID(resp.MovedTo); err == nil {
				return location{}, &movedAnswer{origin: resp.Origin, to: to, epoch: resp.Epoch}
			}
		}
		return location{}, errNotThere
	}
	return location{node: p, epoch: resp.Epoch, owner: resp.Owner, info: resp.Info}, nil
}

// listPeers collects every peer's daemons; peers that do not answer are
// named in missing. A member that is dead, suspect, left, or does not
// answer still has its daemons listed, from its last listing, marked
// unreachable (offline when it left cleanly), and a row with no id when
// nothing is known: a listing never leaves a node out silently. Only a node
// that left cleanly and last listed no daemons is not mentioned.
func (n *Node) listPeers(ctx context.Context) (all []DaemonInfo, missing []string) {
	ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
	defer cancel()
	type absent struct {
		ref    peerRef
		status string
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		gone []absent
	)
	members := map[nodekey.NodeID]bool{}
	for _, m := range n.mem.Members() {
		if m.Local {
			continue
		}
		id, err := nodekey.ParseNodeID(m.Meta.NodeID)
		if m.MetaErr != nil || err != nil {
			// Not addressable (its announcement is broken), but a
			// member all the same: its row says so.
			mu.Lock() // the calls below append to gone too
			gone = append(gone, absent{ref: peerRef{name: m.Name}, status: StatusUnreachable})
			mu.Unlock()
			continue
		}
		if id == n.id {
			continue
		}
		members[id] = true
		p := peerRef{id: id, name: m.Name}
		if m.State != cluster.StateAlive || m.Meta.QUICAddr == "" {
			status := StatusUnreachable
			if m.State == cluster.StateLeft {
				status = StatusOffline
			}
			mu.Lock()
			gone = append(gone, absent{ref: p, status: status})
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp listResponse
			err := n.ep.Call(ctx, p.peer(), subList, listRequest{}, &resp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				gone = append(gone, absent{ref: p, status: StatusUnreachable})
				return
			}
			n.listings.put(id, resp.Daemons, time.Now())
			all = append(all, withStatus(resp.Daemons)...)
		}()
	}
	wg.Wait()
	n.listings.keepOnly(members)
	// A daemon that moved away from a node before it went silent is
	// listed where it runs now, not twice.
	live := map[string]bool{}
	if len(gone) > 0 {
		for _, d := range n.rt.Daemons() {
			live[abi.FormatOrigin(d.Origin())] = true
		}
		for _, d := range all {
			live[d.ID] = true
		}
	}
	for _, g := range gone {
		if l, ok := n.listings.get(g.ref.id); ok && g.status == StatusOffline && len(l.daemons) == 0 && l.dropped == 0 {
			continue // left cleanly with nothing on it: nothing is missing
		}
		missing = append(missing, g.ref.String())
		all = append(all, n.lastKnown(g.ref.id, g.ref.String(), g.status, live)...)
	}
	slices.Sort(missing)
	return all, missing
}

func (n *Node) remoteSpawn(ctx context.Context, target nodekey.NodeID, req SpawnRequest) (DaemonInfo, error) {
	digest := req.Kind
	alias := ""
	if k, err := n.rt.Kind(req.Kind); err == nil {
		digest = string(k.Digest)
		if !strings.HasPrefix(req.Kind, "sha256:") {
			alias = req.Kind
		}
	} else if !strings.HasPrefix(req.Kind, "sha256:") {
		// Deployed elsewhere: the target fetches the module from whichever
		// peer has it, and keeps the kind name once the daemon runs.
		if digest, err = n.ResolveKind(ctx, req.Kind); err != nil {
			return DaemonInfo{}, err
		}
		alias = req.Kind
	}
	var labels map[string]string
	if req.Name != "" {
		labels = map[string]string{"name": req.Name}
	}
	resp, err := n.ep.RemoteSpawn(ctx, target, meshquic.SpawnRequest{Digest: digest, Kind: alias, Config: req.Config, Labels: labels})
	if err != nil {
		return DaemonInfo{}, fromRemote(err, n.peerName(target))
	}
	n.ep.Routes().Set(resp.Origin, target, resp.Epoch)
	p := peerRef{id: target, name: n.peerName(target)}
	if loc, err := n.lookupAt(ctx, p, abi.FormatOrigin(resp.Origin)); err == nil {
		return loc.info, nil
	}
	return DaemonInfo{ID: abi.FormatOrigin(resp.Origin), Name: req.Name, Kind: alias, Digest: digest, Node: p.String(), NodeID: target.String()}, nil
}

func (n *Node) remoteStop(ctx context.Context, loc location) error {
	o, err := abi.ParseOrigin(loc.info.ID)
	if err != nil {
		return err
	}
	if d, ok := n.localAt(loc); ok {
		_, err := n.stopLocal(ctx, d)
		return err
	}
	if err := n.ep.RemoteStop(ctx, loc.node.id, meshquic.StopRequest{Origin: o}); err != nil {
		return fromRemote(err, loc.node.String())
	}
	n.ep.Routes().Delete(o, loc.epoch)
	return nil
}

func (n *Node) remoteSnapshot(ctx context.Context, loc location) ([]byte, error) {
	o, err := abi.ParseOrigin(loc.info.ID)
	if err != nil {
		return nil, err
	}
	if d, ok := n.localAt(loc); ok {
		return n.snapshotLocal(ctx, d)
	}
	resp, err := n.ep.RemoteSnapshot(ctx, loc.node.id, meshquic.SnapshotRequest{Origin: o})
	if err != nil {
		return nil, fromRemote(err, loc.node.String())
	}
	return resp.Snapshot, nil
}

func (n *Node) remoteLogs(ctx context.Context, loc location) ([]LogLine, error) {
	o, err := abi.ParseOrigin(loc.info.ID)
	if err != nil {
		return nil, err
	}
	if d, ok := n.localAt(loc); ok {
		return convertLogs(d.Logs()), nil
	}
	var resp logsResponse
	if err := n.ep.Call(ctx, loc.node.peer(), subLogs, logsRequest{Origin: o}, &resp); err != nil {
		return nil, fromRemote(err, loc.node.String())
	}
	out := make([]LogLine, len(resp.Lines))
	for i, l := range resp.Lines {
		out[i] = LogLine{Time: time.Unix(0, l.Time).UTC(), Level: l.Level, Text: l.Text}
	}
	return out, nil
}

// remoteError is a peer's failure mapped back to this package's sentinels,
// keeping the peer's message (its reason, said once).
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// fromRemote maps a transport error to the node's vocabulary through the
// error table, so a failure keeps its class however many nodes relay it.
func fromRemote(err error, peer string) error {
	if errors.Is(err, meshquic.ErrOverloaded) {
		// Refused before it ran (a sender beyond its window): as
		// undelivered as an unreachable peer, so a client may resend it.
		return classed(ErrUnavailable, err, "node "+peer)
	}
	var re *meshquic.RemoteError
	if errors.As(err, &re) {
		sentinel := meshquic.ErrRemote
		if c, ok := ClassByCode(re.Code); ok && c.Sentinel != nil {
			sentinel = c.Sentinel
		}
		msg := re.Message
		if !strings.Contains(msg, "(on node ") {
			// Relayed messages already name the node that failed.
			msg = fmt.Sprintf("%s (on node %s)", msg, peer)
		}
		return &remoteError{sentinel: sentinel, msg: msg}
	}
	if errors.Is(err, meshquic.ErrPeerUnavailable) || errors.Is(err, meshquic.ErrUnknownPeer) || errors.Is(err, meshquic.ErrTimeout) {
		return classed(ErrUnavailable, err, "node "+peer)
	}
	return err
}

// notHosted is a local "daemon not found" as the transport must see it
// (ErrNotHosted), without prefixing the transport's words to the reason.
type notHosted struct{ err error }

func (e *notHosted) Error() string        { return e.err.Error() }
func (e *notHosted) Unwrap() error        { return e.err }
func (e *notHosted) Is(target error) bool { return target == meshquic.ErrNotHosted }

// toWire gives a local error the code of its row in the error table, which
// the remote caller's fromRemote maps back. Errors the transport has its
// own code for are left to it.
func toWire(err error) error {
	if err == nil {
		return nil
	}
	c := ClassOf(err)
	switch {
	case c.Sentinel == ErrDaemonNotFound:
		// The transport answers "moved" instead when it knows where to.
		return &notHosted{err: err}
	case c.ownsWire(err):
		return coded(c.Code, err)
	}
	return err
}
