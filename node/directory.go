package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/directory"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// The location directory (see internal/directory): every daemon id and name
// has R=2 homes among the members, chosen by rendezvous hashing; the
// hosting node registers its daemons there, and a node that does not know
// where a daemon lives asks a home and then the node it names, instead of
// every member. The directory is a hint: the named node answers for what
// it hosts (or "moved"), so a stale entry costs a message, never a wrong
// answer, and when both homes fail the lookup falls back to the fan-out.
const subDir = "wasmesh/node/dir/1"

// Lookup message kinds for wasmesh_lookup_messages_total.
const (
	lookupHome   = "home"   // asking a home
	lookupFollow = "follow" // asking the node a home (or a cached name) names
	lookupFanout = "fanout" // asking every peer, the last resort
)

const (
	// dirTableMax bounds what one node keeps as a home; a registration
	// beyond it is refused and that daemon is found by fan-out.
	dirTableMax = 1 << 18
	// dirHomeTimeout bounds one question to a home: a home that does not
	// answer promptly is skipped for the next one (or the fan-out). Both
	// homes together take no longer than the fan-out's own bound.
	dirHomeTimeout = fanoutTimeout / 2
	// dirRetry is how often a node retries registrations a home did not
	// take, and notices membership changes no event announced (a member
	// becoming verified).
	dirRetry = 2 * time.Second
	// dirParallel bounds the registrations one node has in flight.
	dirParallel = 8
)

// dirFrame carries a directory message (internal/directory's strict codec)
// inside the mesh's frame.
type dirFrame struct {
	B []byte `msgpack:"b"`
}

// dirReg is what this node registered for one of its daemons, and at
// which homes it was taken.
type dirReg struct {
	entry directory.Entry
	at    []string
	// homes are entry's homes among the members of the round that
	// computed them: a round with the same members and entry reuses them
	// (a drain's arrivals each kick a round over every daemon here).
	homes []string
}

// dirState is a node's part of the directory: the table it keeps as a
// home, and the registrations of its own daemons.
type dirState struct {
	table *directory.Table
	kick  chan struct{}

	// mu guards reg and members, which only the registration loop
	// writes; nothing is sent or read from disk under it.
	mu      sync.Mutex
	reg     map[uint64]dirReg
	members []string // the member set of the last round

	// Lookup messages by kind and fan-outs, read by tests through
	// lookupMessages and exported as counters.
	home, follow, fanout, fanouts atomic.Uint64
	regs                          *prometheus.CounterVec
}

func newDirState(reg prometheus.Registerer) *dirState {
	d := &dirState{
		table: directory.NewTable(dirTableMax),
		kick:  make(chan struct{}, 1),
		reg:   map[uint64]dirReg{},
		regs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmesh_directory_registrations_total",
			Help: "Directory registrations and unregistrations this node sent for its daemons, by outcome (ok, failed).",
		}, []string{"outcome"}),
	}
	d.regs.WithLabelValues("ok")
	d.regs.WithLabelValues("failed")
	const help = "Mesh messages this node sent to find where a daemon lives: to a home of the directory, to the node a home or a cached route named (follow), or to every peer (fanout)."
	msgs := func(kind string, c *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wasmesh_lookup_messages_total", Help: help, ConstLabels: prometheus.Labels{"kind": kind}},
			func() float64 { return float64(c.Load()) })
	}
	reg.MustRegister(msgs(lookupHome, &d.home), msgs(lookupFollow, &d.follow), msgs(lookupFanout, &d.fanout),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wasmesh_lookup_fanouts_total",
			Help: "Lookups that asked every peer because the directory's homes did not know the daemon or did not answer.",
		}, func() float64 { return float64(d.fanouts.Load()) }),
		d.regs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wasmesh_directory_entries", Help: "Daemons this node keeps as a home of the directory.",
		}, func() float64 { return float64(d.table.Len()) }))
	return d
}

// lookupKindKey labels the lookups a context's calls make, so lookupAt
// counts each message under the step of locate that sent it.
type lookupKindKey struct{}

func withLookupKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, lookupKindKey{}, kind)
}

func (n *Node) countLookup(ctx context.Context) {
	kind, _ := ctx.Value(lookupKindKey{}).(string)
	if n.dir == nil {
		return
	}
	switch kind {
	case lookupHome:
		n.dir.home.Add(1)
	case lookupFollow:
		n.dir.follow.Add(1)
	case lookupFanout:
		n.dir.fanout.Add(1)
	}
}

// lookupMessages reports the lookup messages this node sent, by kind
// (home, follow, fanout), and how many lookups fell back to the fan-out.
func (n *Node) lookupMessages() (home, follow, fanout, fanouts uint64) {
	return n.dir.home.Load(), n.dir.follow.Load(), n.dir.fanout.Load(), n.dir.fanouts.Load()
}

func (n *Node) kickDir() {
	if n.dir == nil {
		return
	}
	select {
	case n.dir.kick <- struct{}{}:
	default:
	}
}

// dirMembers is the member set the homes are chosen from: this node and
// the alive, verified peers. Two nodes may briefly disagree on it; R=2
// homes absorb one difference.
func (n *Node) dirMembers() *directory.Members {
	ps := n.peers()
	ids := make([]string, 0, len(ps)+1)
	ids = append(ids, n.id.String())
	for _, p := range ps {
		ids = append(ids, p.id.String())
	}
	return directory.NewMembers(ids)
}

func (n *Node) serveDirectory() {
	n.ep.Handle(subDir, meshquic.Unary(func(ctx context.Context, peer meshquic.NodeID, req dirFrame) (dirFrame, error) {
		m, err := directory.Decode(req.B)
		if err != nil {
			return dirFrame{}, toWire(wrap(ErrBadRequest, err))
		}
		ans, err := n.answerDir(peer, m)
		if err != nil {
			return dirFrame{}, toWire(err)
		}
		b, err := ans.Encode(nil)
		return dirFrame{B: b}, err
	}))
}

// answerDir is a home's side of subDir. A node registers and unregisters
// only its own daemons: the entry must name the peer that sent it (the
// mesh authenticated it), so no member can point another's daemons away.
func (n *Node) answerDir(peer nodekey.NodeID, m directory.Message) (directory.Message, error) {
	ans := directory.Message{Kind: directory.KindAnswer}
	switch m.Kind {
	case directory.KindRegister, directory.KindUnregister:
		if m.Entry.Node != peer.String() {
			return ans, fmt.Errorf("%w: a node registers only its own daemons", ErrBadRequest)
		}
		if m.Kind == directory.KindUnregister {
			n.dir.table.Unregister(m.Entry.Origin, m.Entry.Node, m.Entry.Epoch)
			return ans, nil
		}
		if _, err := n.dir.table.Register(m.Entry); errors.Is(err, directory.ErrFull) {
			ans.Refused = true
		}
	case directory.KindLookupID:
		if e, ok := n.dir.table.ByOrigin(m.Origin); ok {
			ans.Entries = []directory.Entry{e}
		}
	case directory.KindLookupName:
		ans.Entries = n.dir.table.ByName(m.Name)
	default:
		return ans, fmt.Errorf("%w: directory message kind %d is not a request", ErrBadRequest, m.Kind)
	}
	return ans, nil
}

// callDir sends one directory message to home (this node: its own table).
func (n *Node) callDir(ctx context.Context, home string, m directory.Message) (directory.Message, error) {
	if home == n.id.String() {
		return n.answerDir(n.id, m)
	}
	id, err := nodekey.ParseNodeID(home)
	if err != nil {
		return directory.Message{}, err
	}
	b, err := m.Encode(nil)
	if err != nil {
		return directory.Message{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, dirHomeTimeout)
	defer cancel()
	var resp dirFrame
	if err := n.ep.Call(ctx, meshquic.PeerID(id), subDir, dirFrame{B: b}, &resp); err != nil {
		return directory.Message{}, fromRemote(err, n.peerName(id))
	}
	ans, err := directory.Decode(resp.B)
	if err == nil && ans.Kind != directory.KindAnswer {
		err = fmt.Errorf("%w: directory answer of kind %d", directory.ErrMalformed, ans.Kind)
	}
	return ans, err
}

// locateHomes asks ref's homes where it lives and verifies the answer at
// the node they name: two messages when the first home knows it. It
// reports false when the homes do not know it, do not answer, or name a
// node that does not have it (the caller then asks every peer).
func (n *Node) locateHomes(ctx context.Context, ref string) (location, bool) {
	key, name := "", ""
	o, perr := abi.ParseOrigin(ref)
	if perr == nil {
		key = directory.IDKey(o)
	} else {
		if CheckName("daemon", ref) != nil {
			return location{}, false
		}
		key, name = directory.NameKey(ref), ref
	}
	q := directory.Message{Kind: directory.KindLookupID, Origin: o}
	if name != "" {
		q = directory.Message{Kind: directory.KindLookupName, Name: name}
	}
	for _, home := range n.dirMembers().Homes(key, directory.R) {
		if home != n.id.String() {
			n.countLookup(withLookupKind(ctx, lookupHome))
		}
		ans, err := n.callDir(ctx, home, q)
		if err != nil || len(ans.Entries) != 1 {
			// Two daemons under one name: the fan-out finds both and
			// says so.
			continue
		}
		e := ans.Entries[0]
		to, err := nodekey.ParseNodeID(e.Node)
		if err != nil || to == n.id {
			continue // a stale entry for a daemon that left this node
		}
		fctx, cancel := context.WithTimeout(withLookupKind(ctx, lookupFollow), fanoutTimeout)
		loc, err := n.follow(fctx, peerRef{id: to, name: n.peerName(to)}, abi.FormatOrigin(e.Origin))
		cancel()
		if err != nil || (name != "" && loc.info.Name != name) {
			continue
		}
		if name != "" {
			n.resolved.set(name, e.Origin)
		}
		return n.cacheRoute(loc), true
	}
	return location{}, false
}

// cachedRoute is where a send goes without asking anyone: the route of an
// id, or of the daemon a name last resolved to. Names are unique in the
// cluster, so while that daemon answers at its route it is the one; a
// delivery that finds it gone (stopped, unreachable) forgets both and the
// caller locates it afresh.
func (n *Node) cachedRoute(ref string) (uint64, meshquic.Route, bool) {
	o, err := abi.ParseOrigin(ref)
	if err != nil {
		var ok bool
		if o, ok = n.resolved.get(ref); !ok {
			return 0, meshquic.Route{}, false
		}
	}
	r, ok := n.ep.Routes().Lookup(o)
	if !ok || r.Node == n.id {
		return 0, meshquic.Route{}, false
	}
	return o, r, true
}

// forgetRoute drops what cachedRoute used after it led nowhere.
func (n *Node) forgetRoute(ref string, o uint64, r meshquic.Route) {
	n.ep.Routes().Delete(o, r.Epoch)
	if _, err := abi.ParseOrigin(ref); err != nil {
		n.resolved.forget(ref)
	}
}

// dirLoop keeps this node's daemons registered at their homes: after each
// spawn, stop, restore or arrival (kickDir), on membership events, and
// every dirRetry for what a home did not take. It runs alone, so rounds
// never overlap, and holds no lock while it sends.
func (n *Node) dirLoop() {
	defer n.wg.Done()
	t := time.NewTicker(dirRetry)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.dir.kick:
		case <-t.C:
		}
		n.dirRound(n.ctx)
	}
}

// dirRound registers every local daemon at the homes it has now and was
// not taken at yet (all of them after a change of node, epoch or name),
// unregisters daemons that stopped, and drops table entries this node is
// no longer a home of. With an unchanged member set and no local change
// it sends nothing, so membership gossip about load costs no messages.
func (n *Node) dirRound(ctx context.Context) {
	m := n.dirMembers()
	self := n.id.String()
	type job struct {
		m  directory.Message
		to string
	}
	var jobs []job
	live := map[uint64]bool{}

	n.dir.mu.Lock()
	changed := !slices.Equal(n.dir.members, m.IDs())
	n.dir.members = m.IDs()
	known := make(map[uint64]dirReg, len(n.dir.reg))
	for o, r := range n.dir.reg {
		known[o] = r
	}
	n.dir.mu.Unlock()

	for _, d := range n.rt.Daemons() {
		o := d.Origin()
		live[o] = true
		e := directory.Entry{Origin: o, Node: self, Name: d.Name()}
		cur, ok := known[o]
		if ok {
			e.Epoch = cur.entry.Epoch
		} else {
			// No record: restored by a migration that has not gone live
			// here; its arrival kicks a round.
			rec, err := n.store.Get(o)
			if err != nil {
				continue
			}
			e.Epoch = rec.Epoch
		}
		if ok && cur.entry != e {
			cur = dirReg{} // renamed: every home hears the new entry
		}
		homes := cur.homes
		if changed || homes == nil {
			homes = directory.HomesOf(e, m)
		}
		at := cur.at
		if changed || len(at) > 0 && !allIn(at, homes) {
			at = slices.DeleteFunc(slices.Clone(cur.at), func(h string) bool { return !slices.Contains(homes, h) })
		}
		known[o] = dirReg{entry: e, at: at, homes: homes}
		for _, h := range homes {
			if !slices.Contains(at, h) {
				jobs = append(jobs, job{m: directory.Message{Kind: directory.KindRegister, Entry: e}, to: h})
			}
		}
	}
	for o, r := range known {
		if live[o] {
			continue
		}
		delete(known, o)
		if _, moved := n.ep.Routes().Moved(o); moved {
			// Its new node registers a higher epoch; until then this
			// node answers lookups with "moved".
			continue
		}
		for _, h := range r.at {
			jobs = append(jobs, job{m: directory.Message{Kind: directory.KindUnregister, Entry: r.entry}, to: h})
		}
	}

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, dirParallel)
		took = map[uint64][]string{}
	)
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ans, err := n.callDir(ctx, j.to, j.m)
			if err != nil || ans.Refused {
				n.dir.regs.WithLabelValues("failed").Inc()
				return
			}
			n.dir.regs.WithLabelValues("ok").Inc()
			if j.m.Kind == directory.KindRegister {
				mu.Lock()
				took[j.m.Entry.Origin] = append(took[j.m.Entry.Origin], j.to)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	n.dir.mu.Lock()
	for o, hs := range took {
		if r, ok := known[o]; ok {
			r.at = append(slices.Clip(r.at), hs...)
			known[o] = r
		}
	}
	n.dir.reg = known
	n.dir.mu.Unlock()

	if changed {
		// Entries this node is no longer a home of: their hosts filled
		// the new homes (above, on their side). Dropping them keeps the
		// table to what this node is asked for.
		n.dir.table.Prune(func(e directory.Entry) bool { return slices.Contains(directory.HomesOf(e, m), self) })
	}
}

// directoryEntry reports what this node, as a home, holds for origin
// (tests and diagnostics).
func (n *Node) directoryEntry(origin uint64) (node string, epoch uint64, ok bool) {
	e, ok := n.dir.table.ByOrigin(origin)
	return e.Node, e.Epoch, ok
}

// allIn reports whether every one of xs is in set.
func allIn(xs, set []string) bool {
	for _, x := range xs {
		if !slices.Contains(set, x) {
			return false
		}
	}
	return true
}
