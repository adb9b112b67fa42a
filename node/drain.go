package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Drain limits.
const (
	DefaultDrainParallel = 4
	MaxDrainParallel     = 64
	// drainTries bounds the attempts per daemon; each retry prefers a
	// target not tried yet.
	drainTries = 3
	// drainRounds bounds the re-listings: a spawn or an inbound migration
	// that passed its draining check just before the flag was set lands
	// after the first listing and is moved by the next round.
	drainRounds = 3
)

// DrainRequest empties Node (this node: the drained node runs its own
// drain) onto the other members.
type DrainRequest struct {
	Node string `json:"node"`
	// To limits the targets to these nodes (names or ids); Require to the
	// nodes matching a placement filter. At most one of them.
	To      []string `json:"to,omitempty"`
	Require string   `json:"require,omitempty"`
	// Parallel is how many migrations run at once (DefaultDrainParallel
	// when 0).
	Parallel int `json:"parallel,omitempty"`
}

// DrainProgress is reported after each daemon's migration ends (moved,
// retried or failed) and once at the start with the totals.
type DrainProgress struct {
	Event     string `json:"event"` // start, moved, retry, failed
	Daemon    string `json:"daemon,omitempty"`
	Name      string `json:"name,omitempty"`
	To        string `json:"to,omitempty"`
	Error     string `json:"error,omitempty"`
	Total     int    `json:"total"`
	Moved     int    `json:"moved"`
	Failed    int    `json:"failed"`
	Remaining int    `json:"remaining"`
	Bytes     int64  `json:"bytes"`
}

// DrainDaemon is one daemon's outcome.
type DrainDaemon struct {
	Daemon      string  `json:"daemon"`
	Name        string  `json:"name,omitempty"`
	To          string  `json:"to,omitempty"`
	Attempts    int     `json:"attempts"`
	PauseMillis float64 `json:"pause_ms"`
	Bytes       int     `json:"bytes"`
	Error       string  `json:"error,omitempty"`
}

// DrainResult summarises a drain; the node stays draining afterwards
// (Undrain lets work back in).
type DrainResult struct {
	Node    string        `json:"node"`
	Total   int           `json:"total"`
	Moved   int           `json:"moved"`
	Failed  int           `json:"failed"`
	Bytes   int64         `json:"bytes"`
	Millis  float64       `json:"total_ms"`
	Daemons []DrainDaemon `json:"daemons"`
}

// Draining reports whether this node is draining.
func (n *Node) Draining() bool { return n.draining.Load() }

func (n *Node) loadDraining() error {
	on, err := n.store.Draining()
	if err != nil {
		return err
	}
	n.draining.Store(on)
	if on {
		n.log.Warn("node is draining (from before the restart): spawns and inbound migrations are refused until 'wasmesh node undrain'")
	}
	return nil
}

// setDraining persists the flag first, so a restart never forgets a drain
// it announced, then announces it.
func (n *Node) setDraining(on bool) error {
	if err := n.store.SetDraining(on); err != nil {
		return fmt.Errorf("draining flag not stored: %w", err)
	}
	n.draining.Store(on)
	n.kickMeta()
	return nil
}

func (n *Node) refuseIfDraining(op string) error {
	if n.draining.Load() {
		return fmt.Errorf("%w: %s refused: node %s is draining; place the daemon elsewhere or run 'wasmesh node undrain %s'", ErrDraining, op, n.name, n.name)
	}
	return nil
}

// refuseDrainingTarget refuses a migration to a node that announces it is
// draining, before anything is sent; the target refuses it too
// (migrator.Hooks.Admit), for a source that has not heard yet.
func (n *Node) refuseDrainingTarget(target nodekey.NodeID, ref string) error {
	if m, ok := n.mem.MemberByNodeID(target.String()); ok && m.Meta.Draining {
		return fmt.Errorf("%w: node %s takes no migrations while it drains", ErrDraining, ref)
	}
	return nil
}

// drainHost resolves the node a drain or undrain is about: this one ("" or
// its name or id), or another member, which runs its own drain (it sees
// every pause directly) and relays its progress here.
func (n *Node) drainHost(ref string) (nodekey.NodeID, bool, error) {
	if ref == "" || ref == n.name || ref == n.id.String() {
		return n.id, false, nil
	}
	id, err := n.resolveNode(ref)
	if err != nil {
		return id, false, err
	}
	return id, id != n.id, nil
}

// Undrain lets spawns and inbound migrations back onto the node ref (this
// one when "").
func (n *Node) Undrain(ctx context.Context, ref string) error {
	id, remote, err := n.drainHost(ref)
	if err != nil {
		return err
	}
	if remote {
		if err := n.ep.Call(ctx, meshquic.PeerID(id), subUndrain, struct{}{}, nil); err != nil {
			return fromRemote(err, n.peerName(id))
		}
		return nil
	}
	return n.setDraining(false)
}

// Drain and undrain asked of another node (see drainHost). subDrain's
// caller sends a DrainRequest; the drained node answers with a frame per
// progress event, then one with the result and the error, if any (a
// partial drain's result matters as much as its error).
const (
	subDrain   = "wasmesh/node/drain/1"
	subUndrain = "wasmesh/node/undrain/1"
)

type drainFrame struct {
	Progress *DrainProgress `msgpack:"p,omitempty"`
	Result   *DrainResult   `msgpack:"r,omitempty"`
	Code     string         `msgpack:"c,omitempty"`
	Error    string         `msgpack:"e,omitempty"`
}

// drainRelayQueue bounds the progress events waiting for a slow caller;
// beyond it events are dropped (the result has every daemon's outcome).
const drainRelayQueue = 1024

func (n *Node) serveDrainRelay() {
	n.ep.Handle(subUndrain, meshquic.Unary(func(_ context.Context, _ meshquic.NodeID, _ struct{}) (struct{}, error) {
		return struct{}{}, toWire(n.setDraining(false))
	}))
	n.ep.Handle(subDrain, func(ctx context.Context, s *meshquic.Stream) error {
		var req DrainRequest
		if err := s.Recv(&req); err != nil {
			return err
		}
		req.Node = "" // this node, whatever the caller called it
		queue := make(chan DrainProgress, drainRelayQueue)
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for p := range queue {
				if s.Send(drainFrame{Progress: &p}) != nil {
					for range queue { // the caller left: drain the queue
					}
				}
			}
		}()
		res, err := n.Drain(ctx, req, func(p DrainProgress) {
			select {
			case queue <- p:
			default:
			}
		})
		close(queue)
		<-sent
		f := drainFrame{Result: &res}
		if err != nil {
			f.Code, f.Error = ClassOf(err).Code, err.Error()
		}
		return s.Send(f)
	})
}

// remoteDrain asks node id to drain itself and relays its progress.
func (n *Node) remoteDrain(ctx context.Context, id nodekey.NodeID, req DrainRequest, progress func(DrainProgress)) (DrainResult, error) {
	peer := n.peerName(id)
	s, err := n.ep.OpenStream(ctx, meshquic.PeerID(id), subDrain)
	if err != nil {
		return DrainResult{}, fromRemote(err, peer)
	}
	defer s.Close()
	if err := s.Send(req); err != nil {
		return DrainResult{}, fromRemote(err, peer)
	}
	for {
		var f drainFrame
		err := s.Recv(&f)
		switch {
		case errors.Is(err, io.EOF):
			return DrainResult{}, fmt.Errorf("%w: node %s ended the drain without a result; see 'wasmesh nodes' and 'wasmesh ps'", ErrUnavailable, peer)
		case err != nil:
			return DrainResult{}, fromRemote(err, peer)
		case f.Result != nil:
			if f.Error == "" {
				return *f.Result, nil
			}
			sentinel := ErrMigration
			if c, ok := ClassByCode(f.Code); ok && c.Sentinel != nil {
				sentinel = c.Sentinel
			}
			return *f.Result, &remoteError{sentinel: sentinel, msg: fmt.Sprintf("%s (on node %s)", f.Error, peer)}
		case f.Progress != nil && progress != nil:
			progress(*f.Progress)
		}
	}
}

// drainTargets are the candidates a drain may move daemons to, with their
// announced load.
func (n *Node) drainTargets(req DrainRequest) (map[string]int, error) {
	var only map[string]bool
	if len(req.To) > 0 {
		only = map[string]bool{}
		for _, to := range req.To {
			id, err := n.resolveNode(to)
			if err != nil {
				return nil, err
			}
			if id == n.id {
				return nil, fmt.Errorf("%w: --to %s is the node being drained", ErrBadRequest, to)
			}
			only[id.String()] = true
		}
	}
	var f cluster.Filter
	if req.Require != "" && req.Require != "*" {
		var err error
		if f, err = cluster.ParseFilter(req.Require); err != nil {
			return nil, fmt.Errorf("%w: --require: %w", ErrBadRequest, err)
		}
	}
	var cands []cluster.Candidate
	for _, c := range n.mem.Candidates() {
		if c.NodeID == n.id.String() || (only != nil && !only[c.NodeID]) {
			continue
		}
		cands = append(cands, c)
	}
	out := map[string]int{}
	for _, c := range cands {
		if c.MigrationSupported && f.Match(c.Capabilities) {
			out[c.NodeID] = c.Load
		}
	}
	if len(out) == 0 {
		if _, err := cluster.MigrationTarget(f, cands, n.id.String()); err != nil {
			return nil, noMatch(req.Require, err)
		}
		return nil, fmt.Errorf("%w: no node to drain %s to (draining, unverified and leaving nodes take nothing)", ErrNoMatch, n.name)
	}
	return out, nil
}

// drainPlan spreads daemons by load: each pick is the target with the
// fewest daemons, counting those already assigned, ties by node id.
type drainPlan struct {
	mu   sync.Mutex
	load map[string]int
}

func (p *drainPlan) pick(tried map[string]bool) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := ""
	for _, untriedOnly := range []bool{true, false} {
		for id, l := range p.load {
			if untriedOnly && tried[id] {
				continue
			}
			if best == "" || l < p.load[best] || (l == p.load[best] && id < best) {
				best = id
			}
		}
		if best != "" {
			break
		}
	}
	p.load[best]++
	return best
}

func (p *drainPlan) unassign(id string) {
	p.mu.Lock()
	p.load[id]--
	p.mu.Unlock()
}

// Drain marks the node req.Node (this one when "", else it is asked to
// and relays its progress) draining and moves every daemon it hosts to other
// nodes, Parallel at a time, retrying a failed move (on another target
// when there is one). progress (may be nil) is called from this goroutine
// only. The error wraps ErrMigration when some daemon did not move; the
// result then says which and why.
func (n *Node) Drain(ctx context.Context, req DrainRequest, progress func(DrainProgress)) (DrainResult, error) {
	start := time.Now()
	id, remote, err := n.drainHost(req.Node)
	if err != nil {
		return DrainResult{}, err
	}
	if remote {
		return n.remoteDrain(ctx, id, req, progress)
	}
	if len(req.To) > 0 && req.Require != "" {
		return DrainResult{}, fmt.Errorf("%w: give at most one of --to NODE and --require FILTER", ErrBadRequest)
	}
	if req.Parallel < 0 || req.Parallel > MaxDrainParallel {
		return DrainResult{}, fmt.Errorf("%w: --parallel %d: want 1 to %d", ErrBadRequest, req.Parallel, MaxDrainParallel)
	}
	par := cmp.Or(req.Parallel, DefaultDrainParallel)
	if !n.drainRunning.CompareAndSwap(false, true) {
		return DrainResult{}, fmt.Errorf("%w: a drain of %s is already running", ErrDraining, n.name)
	}
	defer n.drainRunning.Store(false)
	defer n.activity.trackDrain(n.name, &progress)()
	targets, err := n.drainTargets(req)
	if err != nil {
		return DrainResult{}, err
	}
	if err := n.setDraining(true); err != nil {
		return DrainResult{}, err
	}
	n.log.Info("drain started", "targets", len(targets), "parallel", par)
	plan := &drainPlan{load: targets}
	res := DrainResult{Node: n.name}
	seen := map[uint64]bool{}
	report := func(p DrainProgress) {
		p.Total, p.Moved, p.Failed, p.Bytes = res.Total, res.Moved, res.Failed, res.Bytes
		p.Remaining = res.Total - res.Moved - res.Failed
		if progress != nil {
			progress(p)
		}
	}
	for round := 0; round < drainRounds && ctx.Err() == nil; round++ {
		var batch []*engine.Daemon
		for _, d := range n.rt.Daemons() {
			if !seen[d.Origin()] {
				seen[d.Origin()] = true
				batch = append(batch, d)
			}
		}
		if len(batch) == 0 {
			break
		}
		slices.SortFunc(batch, func(a, b *engine.Daemon) int { return cmp.Compare(a.Origin(), b.Origin()) })
		res.Total += len(batch)
		report(DrainProgress{Event: "start"})
		n.drainBatch(ctx, batch, plan, par, func(dd DrainDaemon, final bool) {
			ev := DrainProgress{Daemon: dd.Daemon, Name: dd.Name, To: dd.To, Error: dd.Error}
			switch {
			case !final:
				ev.Event = "retry"
			case dd.Error == "":
				ev.Event = "moved"
				res.Moved++
				res.Bytes += int64(dd.Bytes)
			default:
				ev.Event = "failed"
				res.Failed++
			}
			if final {
				res.Daemons = append(res.Daemons, dd)
			}
			report(ev)
		})
	}
	slices.SortFunc(res.Daemons, func(a, b DrainDaemon) int { return cmp.Compare(a.Daemon, b.Daemon) })
	res.Millis = ms(time.Since(start))
	n.log.Info("drain finished", "moved", res.Moved, "failed", res.Failed, "total_ms", res.Millis)
	if res.Failed > 0 {
		return res, fmt.Errorf("%w: %d of %d daemons did not move off %s", ErrMigration, res.Failed, res.Total, n.name)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%w: drain interrupted: %w", ErrMigration, err)
	}
	return res, nil
}

// drainBatch runs the migrations of batch on par workers; done sees each
// attempt's outcome on the caller's goroutine (final: no more tries).
func (n *Node) drainBatch(ctx context.Context, batch []*engine.Daemon, plan *drainPlan, par int, done func(DrainDaemon, bool)) {
	type outcome struct {
		dd    DrainDaemon
		final bool
	}
	work := make(chan *engine.Daemon)
	out := make(chan outcome)
	var wg sync.WaitGroup
	for range min(par, len(batch)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				n.drainOne(ctx, d, plan, func(dd DrainDaemon, final bool) { out <- outcome{dd, final} })
			}
		}()
	}
	go func() {
		defer close(work)
		for _, d := range batch {
			select {
			case work <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()
	finished := map[string]bool{}
	for o := range out {
		if o.final {
			finished[o.dd.Daemon] = true
		}
		done(o.dd, o.final)
	}
	// Daemons never handed to a worker: the drain was cancelled.
	for _, d := range batch {
		if !finished[d.ID()] {
			done(DrainDaemon{Daemon: d.ID(), Name: d.Name(), Error: fmt.Sprint("not moved: ", context.Cause(ctx))}, true)
		}
	}
}

func (n *Node) drainOne(ctx context.Context, d *engine.Daemon, plan *drainPlan, report func(DrainDaemon, bool)) {
	dd := DrainDaemon{Daemon: d.ID(), Name: d.Name()}
	if err := d.Usable(); errors.Is(err, engine.ErrDaemonFailed) {
		dd.Error = fmt.Sprintf("failed here, nothing to move: %v; stop it or restore it from a snapshot", err)
		report(dd, true)
		return
	}
	tried := map[string]bool{}
	for attempt := 1; attempt <= drainTries; attempt++ {
		target := plan.pick(tried)
		tried[target] = true
		id, _ := nodekey.ParseNodeID(target)
		dd.To, dd.Attempts = n.peerName(id), attempt
		res, err := n.migrateLocal(ctx, d.Origin(), MigrateRequest{Ref: dd.Daemon, To: target}, nil)
		if err == nil {
			dd.PauseMillis, dd.Bytes, dd.Error = res.PauseMillis, res.SnapshotBytes+res.PreCopyBytes, ""
			report(dd, true)
			return
		}
		plan.unassign(target)
		dd.Error = err.Error()
		if attempt == drainTries || ctx.Err() != nil || errors.Is(err, ErrDaemonNotFound) {
			break
		}
		report(dd, false)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	report(dd, true)
}
