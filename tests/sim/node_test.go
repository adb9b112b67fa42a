package sim

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

// node is one simulated node: a real host runtime and migrator, and the
// small part of the node service the migrator relies on (routing with
// "moved", local delivery, serving calls). A crash replaces the
// incarnation; the index and keys stay.
type node struct {
	s      *sim
	idx    int
	static *ecdh.PrivateKey

	// Guarded by s.mu.
	inc    int
	rt     *engine.Runtime
	mig    *driver.Migrator
	life   context.Context
	kill   context.CancelFunc
	dead   chan struct{}
	routes map[uint64]int // origin → node believed to host it
	moved  map[uint64]int // daemons this node gave away → where
	// gating: restores on this node wait for a "restore" step (off while
	// the simulator itself spawns).
	gating bool
}

// gate is one restore (SpawnFromSnapshot of a migration target) held until
// the simulator lets it finish, so a cancel or timeout can land while the
// restore runs.
type gate struct {
	node, inc int
	ch        chan struct{}
	dead      chan struct{}
}

func (s *sim) startNode(i int, keep map[uint64]int, moved map[uint64]int) error {
	n := s.nodes[i]
	s.mu.Lock()
	n.inc++
	inc := n.inc
	n.life, n.kill = context.WithCancel(context.Background())
	n.dead = make(chan struct{})
	if keep == nil {
		keep = map[uint64]int{}
	}
	if moved == nil {
		moved = map[uint64]int{}
	}
	n.routes, n.moved = keep, moved
	n.gating = false
	dead := n.dead
	s.mu.Unlock()

	hooks := &engine.TestHooks{SpawnStall: func() { s.stall(n, inc, dead) }}
	rt, err := engine.New(context.Background(), engine.Config{Hooks: hooks, Rand: rand.Reader})
	if err != nil {
		return err
	}
	if err := rt.Start(context.Background()); err != nil {
		return err
	}
	if _, err := rt.RegisterModule(context.Background(), s.module, "echo"); err != nil {
		return err
	}
	mig, err := driver.New(driver.Config{
		Runtime:      rt,
		Mesh:         &simMesh{n: n, inc: inc},
		StaticKey:    n.static,
		Timing:       protocol.Timing{Retransmit: time.Second, ChunkRetransmit: 5 * time.Second, PeerTimeout: 10 * time.Second},
		Tick:         s.tick,
		Linger:       s.linger,
		OutputsGrace: time.Second,
		Logger:       s.logger(i),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	n.rt, n.mig = rt, mig
	s.mu.Unlock()
	return nil
}

func (s *sim) logger(i int) *slog.Logger {
	if !*flagMigLog {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
}

// stall holds a restore until released (or the node dies).
func (s *sim) stall(n *node, inc int, dead chan struct{}) {
	s.mu.Lock()
	if !n.gating || n.inc != inc {
		s.mu.Unlock()
		return
	}
	g := &gate{node: n.idx, inc: inc, ch: make(chan struct{}), dead: dead}
	s.gates = append(s.gates, g)
	s.mu.Unlock()
	select {
	case <-g.ch:
	case <-dead:
	}
}

// crash ends the node's incarnation; its migrator and runtime close.
func (s *sim) crash(i int) {
	n := s.nodes[i]
	s.mu.Lock()
	n.inc++ // the closing incarnation's Mesh calls now fail
	close(n.dead)
	n.kill()
	mig, rt := n.mig, n.rt
	n.mig, n.rt = nil, nil
	// Connections to and from it break: what it had in flight is gone, and
	// calls waiting on it learn so.
	for l, q := range s.net.links {
		var keep []*message
		for _, m := range q {
			if m.from == i || m.to == i {
				s.dropLocked(m)
				continue
			}
			keep = append(keep, m)
		}
		s.net.links[l] = keep
	}
	var gates []*gate
	for _, g := range s.gates {
		if g.node != i {
			gates = append(gates, g)
		}
	}
	s.gates = gates
	s.mu.Unlock()
	mig.Close()
	_ = rt.Close(context.Background())
}

// dropLocked loses m; a caller waiting on it gets the answer a broken
// connection gives. Caller holds s.mu.
func (s *sim) dropLocked(m *message) {
	switch m.kind {
	case kindReq:
		s.answerLocked(m.call, response{err: errNotDelivered})
	case kindResp:
		s.answerLocked(m.call, response{err: errLost})
	}
}

func (s *sim) answerLocked(id uint64, r response) {
	c := s.net.calls[id]
	if c == nil {
		return
	}
	delete(s.net.calls, id)
	c.ch <- r
}

// rpc sends one call from node n (incarnation inc) to node to and waits for
// its answer, the caller's context, or the caller's crash.
func (s *sim) rpc(ctx context.Context, n *node, inc, to int, req request) response {
	s.mu.Lock()
	c, id, r, ok := s.beginLocked(n, inc, to, req)
	dead := n.dead
	s.mu.Unlock()
	if !ok {
		return r
	}
	return s.await(ctx, c, id, dead)
}

// beginLocked puts a call on the network; !ok means it failed at once.
// Caller holds s.mu.
func (s *sim) beginLocked(n *node, inc, to int, req request) (*call, uint64, response, bool) {
	if n.inc != inc {
		return nil, 0, response{err: errNotDelivered}, false
	}
	if s.net.severed(n.idx, to) {
		return nil, 0, response{err: errNotDelivered}, false
	}
	s.net.nextID++
	id := s.net.nextID
	c := &call{ch: make(chan response, 1), from: n.idx, fromInc: inc}
	s.net.calls[id] = c
	s.net.push(&message{kind: kindReq, from: n.idx, to: to, fromInc: inc, call: id, req: req, key: fmt.Sprintf("%d|%s", n.idx, req.key())})
	return c, id, response{}, true
}

func (s *sim) await(ctx context.Context, c *call, id uint64, dead chan struct{}) response {
	select {
	case r := <-c.ch:
		return r
	case <-ctx.Done():
	case <-dead:
	}
	s.mu.Lock()
	delete(s.net.calls, id)
	s.mu.Unlock()
	select {
	case r := <-c.ch: // answered meanwhile
		return r
	default:
	}
	return response{err: fmt.Errorf("%w: %w", errLost, ctx.Err())}
}

// deliverMsg hands one message to its receiver. Caller holds s.mu; it is
// released while the receiver takes it.
func (s *sim) deliverMsg(m *message) {
	to := s.nodes[m.to]
	if s.net.severed(m.from, m.to) || s.nodes[m.from].inc != m.fromInc {
		s.dropLocked(m)
		return
	}
	switch m.kind {
	case kindResp:
		s.answerLocked(m.call, m.resp)
	case kindFrame:
		mig := to.mig
		s.mu.Unlock()
		_ = mig.Receive(nodeID(m.from), m.frame)
		s.mu.Lock()
	case kindReq:
		inc := to.inc
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r := s.serve(to, inc, m.from, m.req)
			s.mu.Lock()
			defer s.mu.Unlock()
			if to.inc != inc {
				s.answerLocked(m.call, response{err: errLost})
				return
			}
			s.net.push(&message{kind: kindResp, from: to.idx, to: m.from, fromInc: inc, call: m.call, req: request{op: m.req.op}, resp: r, key: m.key})
		}()
	}
}

// serve answers a call the way the node service does (node/deliver.go,
// drivertest's localOps): a local daemon takes the event through its
// interceptors; one this node gave away answers "moved".
func (s *sim) serve(n *node, inc, from int, req request) response {
	s.mu.Lock()
	if n.inc != inc {
		s.mu.Unlock()
		return response{err: errNotHosted}
	}
	rt, ctx := n.rt, n.life
	mv, moved := n.moved[req.origin]
	s.mu.Unlock()
	switch req.op {
	case "fetch":
		k, err := rt.Kind(req.digest)
		if err != nil {
			return response{err: flatten(err)}
		}
		return response{module: k.Bytes()}
	case "lookup":
		_, err := rt.Daemon(req.origin)
		if err != nil && moved {
			return response{err: &movedError{to: mv}}
		}
		return response{hosted: err == nil}
	}
	d, err := rt.Daemon(req.origin)
	if err != nil {
		if moved {
			return response{err: &movedError{to: mv}}
		}
		return response{err: errNotHosted}
	}
	outs, err := d.Deliver(ctx, req.ev)
	return response{outs: outs, err: flatten(err)}
}

// send is a client's delivery entering at node n, as node.Send routes it:
// locally, along the cached route (following "moved"), else wherever a
// lookup that asks every peer finds it.
func (s *sim) send(ctx context.Context, n *node, origin uint64, ev engine.Event) ([]engine.Output, error) {
	s.mu.Lock()
	inc, rt := n.inc, n.rt
	to, cached := n.routes[origin]
	s.mu.Unlock()
	if rt == nil {
		return nil, errNotDelivered
	}
	if d, err := rt.Daemon(origin); err == nil {
		outs, err := d.Deliver(ctx, ev)
		return outs, flatten(err)
	}
	looked := false
	for hop := 0; hop < 6; hop++ {
		if !cached || to == n.idx {
			if looked {
				return nil, errNotHosted
			}
			looked = true
			var ok bool
			if to, ok = s.lookup(ctx, n, inc, origin); !ok {
				return nil, errNotHosted
			}
			if to == n.idx {
				d, err := rt.Daemon(origin)
				if err != nil {
					return nil, errNotHosted
				}
				outs, err := d.Deliver(ctx, ev)
				return outs, flatten(err)
			}
		}
		r := s.rpc(ctx, n, inc, to, request{op: "deliver", origin: origin, ev: ev})
		var me *movedError
		switch {
		case errors.As(r.err, &me):
			s.setRoute(n, inc, origin, me.to)
			to, cached = me.to, true
			if me.to == n.idx {
				if d, err := rt.Daemon(origin); err == nil {
					outs, err := d.Deliver(ctx, ev)
					return outs, flatten(err)
				}
				cached = false
			}
			continue
		case errors.Is(r.err, errNotHosted), errors.Is(r.err, errNotDelivered) && !looked:
			s.dropRoute(n, inc, origin)
			cached = false
			continue
		}
		return r.outs, r.err
	}
	return nil, fmt.Errorf("sim: too many hops for %016x", origin)
}

// lookup asks every other node whether it hosts origin (the node's
// fan-out lookup); the lowest-numbered host wins, a "moved" answer counts
// as a pointer.
func (s *sim) lookup(ctx context.Context, n *node, inc int, origin uint64) (int, bool) {
	type ans struct {
		from int
		r    response
	}
	ch := make(chan ans, len(s.nodes))
	peers := 0
	// Every request goes out in one step, in node order, so the network
	// sees the same fan-out on every replay.
	s.mu.Lock()
	dead := n.dead
	for j := range s.nodes {
		if j == n.idx {
			continue
		}
		peers++
		c, id, r, ok := s.beginLocked(n, inc, j, request{op: "lookup", origin: origin})
		if !ok {
			ch <- ans{j, r}
			continue
		}
		go func() { ch <- ans{j, s.await(ctx, c, id, dead)} }()
	}
	s.mu.Unlock()
	best, ptr := -1, -1
	for range peers {
		a := <-ch
		var me *movedError
		switch {
		case a.r.err == nil && a.r.hosted:
			if best < 0 || a.from < best {
				best = a.from
			}
		case errors.As(a.r.err, &me):
			ptr = me.to
		}
	}
	if best < 0 {
		best = ptr
	}
	if best < 0 {
		return 0, false
	}
	s.setRoute(n, inc, origin, best)
	return best, true
}

func (s *sim) setRoute(n *node, inc int, origin uint64, to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.inc == inc {
		n.routes[origin] = to
	}
}

func (s *sim) dropRoute(n *node, inc int, origin uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.inc == inc {
		delete(n.routes, origin)
	}
}
