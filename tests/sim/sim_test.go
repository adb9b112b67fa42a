package sim

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// config sizes one simulated cluster.
type config struct {
	nodes, daemons, clients int
}

// sim is one seeded run: the cluster, the network, the clients and what
// the checker knows.
type sim struct {
	cfg    config
	seed   int64
	module []byte
	tick   time.Duration
	linger time.Duration
	// longOutages lets jumps and partitions outlast the linger.
	longOutages bool
	crashMid    bool // crash nodes with their disk mid-migration too
	coldRoutes  bool // only the owner knows a daemon's route at first (scale runs)
	cutAt       time.Time

	mu      sync.Mutex
	nodes   []*node
	net     *network
	gates   []*gate
	wg      sync.WaitGroup
	daemons []*daemon
	clients []*client
	ops     []*op
	migs    map[int]*migRec // daemon index → latest migration
	bad     []string        // invariant violations
	trace   []string        // resolved steps and outcomes
	async   []string        // outcomes of the current step, sorted at its end
	stop    context.Context
	halt    context.CancelFunc
}

// daemon is what the checker knows of one daemon.
type daemon struct {
	idx    int
	origin uint64
	// maybeLost: a node that held a copy crashed without its disk (or mid-
	// migration); such a daemon is excluded from "no daemon lost" and from
	// the exactly-once counts.
	maybeLost bool
	acked     int
	lastSeq   map[int]uint64     // client → latest acknowledged event id
	outs      map[uint64]emitted // chain sequence → output
}

type emitted struct {
	link    chain.Link
	payload []byte
}

type client struct {
	idx    int
	sender uint64
	next   map[int]uint64 // daemon → next event id
	busy   map[int]bool   // one event per (client, daemon) in flight
}

// op is one client event, retried until acknowledged.
type op struct {
	idx, client, daemon, entry int
	seq                        uint64
	done, abandoned            bool
	ctx                        context.Context
	cancel                     context.CancelFunc
}

type migRec struct {
	h        *driver.Handle
	orch     int
	orchInc  int
	from, to int
	result   string
}

func (m *migRec) finished() bool {
	select {
	case <-m.h.Done():
		return true
	default:
		return false
	}
}

func eventPayload(sender, seq uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, sender)
	return binary.LittleEndian.AppendUint64(b, seq)
}

func (s *sim) violate(format string, args ...any) {
	s.bad = append(s.bad, fmt.Sprintf(format, args...))
}

func (s *sim) note(format string, args ...any) {
	s.async = append(s.async, fmt.Sprintf(format, args...))
}

// setup starts the nodes (each at its own tick phase, so no two
// migrators' tickers fire at the same instant) and spawns the daemons.
func (s *sim) setup() error {
	s.net = newNetwork()
	s.migs = map[int]*migRec{}
	s.stop, s.halt = context.WithCancel(context.Background())
	for i := range s.cfg.nodes {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, &node{s: s, idx: i, static: k})
	}
	for i := range s.cfg.nodes {
		s.alignPhase(i)
		if err := s.startNode(i, nil, nil); err != nil {
			return err
		}
	}
	for i := range s.cfg.daemons {
		n := s.nodes[i%s.cfg.nodes]
		id, err := identity.Generate()
		if err != nil {
			return err
		}
		d, err := n.rt.Spawn(context.Background(), "echo", id, engine.SpawnOptions{})
		if err != nil {
			return err
		}
		s.daemons = append(s.daemons, &daemon{idx: i, origin: d.Origin(), lastSeq: map[int]uint64{}, outs: map[uint64]emitted{}})
		for _, m := range s.nodes {
			if !s.coldRoutes || m == n {
				m.routes[d.Origin()] = n.idx
			}
		}
	}
	for i := range s.cfg.clients {
		s.clients = append(s.clients, &client{idx: i, sender: uint64(0x1000 + i), next: map[int]uint64{}, busy: map[int]bool{}})
	}
	for _, n := range s.nodes {
		n.gating = true
	}
	return nil
}

// alignPhase sleeps until node i's tick phase: every node's ticker then
// fires at instants no other node's does.
func (s *sim) alignPhase(i int) {
	phase := time.Duration(i+1) * s.tick / time.Duration(s.cfg.nodes+1)
	phase += time.Duration(i) * 7 * time.Microsecond
	now := time.Now().UnixNano() % int64(s.tick)
	wait := (int64(phase) - now + int64(s.tick)) % int64(s.tick)
	if wait == 0 {
		wait = int64(s.tick)
	}
	time.Sleep(time.Duration(wait))
}

// copies lists the nodes whose runtime holds origin.
func (s *sim) copies(origin uint64) []int {
	var at []int
	for _, n := range s.nodes {
		s.mu.Lock()
		rt := n.rt
		s.mu.Unlock()
		if rt == nil {
			continue
		}
		if _, err := rt.Daemon(origin); err == nil {
			at = append(at, n.idx)
		}
	}
	return at
}

func (s *sim) runsInFlight() int {
	total := 0
	for _, n := range s.nodes {
		s.mu.Lock()
		mig := n.mig
		s.mu.Unlock()
		if mig != nil {
			total += mig.Resources().Runs
		}
	}
	return total
}

// checkStep runs the invariants that must hold after every step.
func (s *sim) checkStep() {
	runs := s.runsInFlight()
	for _, d := range s.daemons {
		if d.maybeLost {
			continue
		}
		at := s.copies(d.origin)
		switch {
		case len(at) == 0:
			s.violate("daemon d%d lost: no node holds it", d.idx)
		case len(at) > 1 && runs == 0:
			s.violate("daemon d%d has %d owners %v and no migration is running", d.idx, len(at), at)
		}
	}
}

// startOp begins one client event; its goroutine retries it until it is
// acknowledged (outputs or "duplicate": applied once already).
func (s *sim) startOp(c *client, di, entry int) string {
	d := s.daemons[di]
	if c.busy[di] || d.maybeLost {
		return fmt.Sprintf("send c%d d%d skipped", c.idx, di)
	}
	c.next[di]++
	o := &op{idx: len(s.ops), client: c.idx, daemon: di, entry: entry, seq: c.next[di]}
	o.ctx, o.cancel = context.WithCancel(s.stop)
	c.busy[di] = true
	s.ops = append(s.ops, o)
	s.wg.Add(1)
	go s.runOp(o, c, d)
	return fmt.Sprintf("send c%d d%d #%d via n%d", c.idx, di, o.seq, entry)
}

func (s *sim) runOp(o *op, c *client, d *daemon) {
	defer s.wg.Done()
	defer o.cancel()
	ev := engine.Event{Sender: c.sender, Seq: o.seq, Payload: eventPayload(c.sender, o.seq), Once: true}
	for {
		ctx, cancel := context.WithTimeout(o.ctx, 3*time.Second)
		outs, err := s.send(ctx, s.nodes[o.entry], d.origin, ev)
		cancel()
		if err == nil || errors.Is(err, errDuplicate) {
			s.ack(o, c, d, outs, err != nil)
			return
		}
		if o.ctx.Err() != nil {
			s.mu.Lock()
			o.abandoned = true
			c.busy[o.daemon] = false
			s.mu.Unlock()
			return
		}
		// Each op retries at its own instant: two goroutines woken at
		// once would race for the network.
		select {
		case <-time.After(200*time.Millisecond + time.Duration(o.idx)*time.Microsecond):
		case <-o.ctx.Done():
		}
	}
}

// ack records an acknowledged event and checks its outputs: exactly one,
// the event's own payload (echo), and no other output at its chain
// position (two owners would fork the chain).
func (s *sim) ack(o *op, c *client, d *daemon, outs []engine.Output, dup bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.done = true
	c.busy[o.daemon] = false
	d.acked++
	d.lastSeq[c.idx] = o.seq
	want := eventPayload(c.sender, o.seq)
	if dup {
		s.note("ack c%d d%d #%d duplicate", c.idx, d.idx, o.seq)
		return
	}
	if len(outs) != 1 {
		s.violate("c%d d%d #%d answered with %d outputs, want 1", c.idx, d.idx, o.seq, len(outs))
		return
	}
	out := outs[0]
	s.note("ack c%d d%d #%d at chain %d", c.idx, d.idx, o.seq, out.Link.Sequence)
	if !bytes.Equal(out.Payload, want) {
		s.violate("c%d d%d #%d got another event's outputs: %s", c.idx, d.idx, o.seq, describePayload(out.Payload))
	}
	// A daemon whose disk a crash took may resume from an older state
	// elsewhere: its chain may fork where the lost copy had gone on.
	if prev, ok := d.outs[out.Link.Sequence]; ok && !d.maybeLost && (!bytes.Equal(prev.payload, out.Payload) || prev.link != out.Link) {
		s.violate("d%d chain forked at %d: %s and %s", d.idx, out.Link.Sequence, describePayload(prev.payload), describePayload(out.Payload))
	}
	d.outs[out.Link.Sequence] = emitted{link: out.Link, payload: append([]byte(nil), out.Payload...)}
}

func describePayload(p []byte) string {
	if len(p) != 16 {
		return fmt.Sprintf("%d bytes", len(p))
	}
	return fmt.Sprintf("event of sender %x #%d", binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]))
}

// frameName names a migration frame for the history.
func frameName(f []byte) string {
	if len(f) > 1 && f[0] == 1 {
		if m, err := wire.Decode(f[1:]); err == nil {
			return m.Kind().String()
		}
	}
	if len(f) > 0 {
		return fmt.Sprintf("frame%d", f[0])
	}
	return "empty"
}

func (s *sim) msgName(m *message) string {
	switch m.kind {
	case kindFrame:
		return frameName(m.frame)
	case kindReq:
		return "req:" + m.req.op
	}
	return "resp"
}

// settle heals everything, lets every restore finish, delivers every
// message and waits for clients and migrations to end, then for the
// migrators' linger: the end state the final invariants look at.
func (s *sim) settle(rng *mrand.Rand) {
	s.mu.Lock()
	for i := range s.net.cut {
		delete(s.net.cut, i)
	}
	for _, n := range s.nodes {
		n.gating = false
	}
	gates := s.gates
	s.gates = nil
	s.mu.Unlock()
	for _, g := range gates {
		close(g.ch)
	}
	synctest.Wait()
	deadline := time.Now().Add(3 * time.Minute)
	idle := 0
	abandoned := false
	for time.Now().Before(deadline) {
		s.mu.Lock()
		busy := s.net.busy()
		s.mu.Unlock()
		if len(busy) > 0 {
			idle = 0
			s.mu.Lock()
			l := busy[rng.IntN(len(busy))]
			m := s.net.take(l, 0)
			s.trace = append(s.trace, fmt.Sprintf("settle: deliver n%d→n%d %s", l.from, l.to, s.msgName(m)))
			s.deliverMsg(m)
			s.mu.Unlock()
			synctest.Wait()
			s.flushAsync()
			continue
		}
		if s.quiet() && s.runsInFlight() == 0 {
			idle++
			if idle > 3 {
				break
			}
		}
		if !abandoned && time.Until(deadline) < 2*time.Minute {
			// Events for daemons a crash may have taken can never be
			// acknowledged: their clients give up.
			abandoned = true
			s.mu.Lock()
			for _, o := range s.ops {
				if !o.done && s.daemons[o.daemon].maybeLost {
					o.cancel()
				}
			}
			s.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
	}
	// Past the linger every finished migration is forgotten.
	for end := time.Now().Add(s.linger + 2*time.Second); time.Now().Before(end); {
		s.mu.Lock()
		busy := s.net.busy()
		if len(busy) > 0 {
			m := s.net.take(busy[0], 0)
			s.trace = append(s.trace, fmt.Sprintf("linger: deliver n%d→n%d %s", busy[0].from, busy[0].to, s.msgName(m)))
			s.deliverMsg(m)
		}
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
	}
}

func (s *sim) quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.ops {
		if !o.done && !o.abandoned {
			return false
		}
	}
	for _, m := range s.migs {
		if !m.finished() && s.nodes[m.orch].inc == m.orchInc {
			return false
		}
	}
	return len(s.gates) == 0
}

// checkEnd runs the invariants of the settled cluster.
func (s *sim) checkEnd() {
	s.mu.Lock()
	for _, o := range s.ops {
		if !o.done && !o.abandoned {
			s.violate("c%d d%d #%d never acknowledged (a sender waits forever)", o.client, o.daemon, o.seq)
		}
		if o.abandoned && !s.daemons[o.daemon].maybeLost {
			s.violate("c%d d%d #%d abandoned for a daemon that was not lost", o.client, o.daemon, o.seq)
		}
	}
	for i, m := range s.migs {
		if !m.finished() && s.nodes[m.orch].inc == m.orchInc {
			s.violate("migration of d%d never finished (phase %v)", i, m.h.Phase())
		}
	}
	s.mu.Unlock()
	for _, n := range s.nodes {
		r := n.mig.Resources()
		if r.Runs+r.Handles+r.Staged+r.PreCopyIn+r.Bases != 0 || r.InboundBytes != 0 {
			s.violate("n%d migrator resources not back to zero after settling: %+v", n.idx, r)
		}
	}
	for _, d := range s.daemons {
		at := s.copies(d.origin)
		if len(at) > 1 {
			s.violate("daemon d%d has %d owners %v after settling", d.idx, len(at), at)
			continue
		}
		if len(at) == 0 {
			if !d.maybeLost {
				s.violate("daemon d%d lost", d.idx)
			}
			continue
		}
		if d.maybeLost {
			continue
		}
		dm, err := s.nodes[at[0]].rt.Daemon(d.origin)
		if err != nil {
			s.violate("daemon d%d: %v", d.idx, err)
			continue
		}
		st := dm.Stats()
		// echo emits one output per event: the chain length is the number
		// of events applied, over every copy the daemon ever had.
		if st.ChainSequence != uint64(d.acked) {
			s.violate("d%d applied %d events, %d were acknowledged (each exactly once)", d.idx, st.ChainSequence, d.acked)
		}
		hz := dm.Horizon()
		for ci, seq := range d.lastSeq {
			if got := hz[s.clients[ci].sender]; got != seq {
				s.violate("d%d horizon of c%d is %d, latest acknowledged %d", d.idx, ci, got, seq)
			}
		}
		s.checkChain(d, dm)
	}
}

// checkChain validates every output a client saw against its neighbours,
// from genesis, across every move, and against the daemon's head.
func (s *sim) checkChain(d *daemon, dm *engine.Daemon) {
	seqs := make([]uint64, 0, len(d.outs))
	for q := range d.outs {
		seqs = append(seqs, q)
	}
	slices.Sort(seqs)
	for _, q := range seqs {
		e := d.outs[q]
		if e.link.Origin != d.origin {
			s.violate("d%d output %d carries origin %016x", d.idx, q, e.link.Origin)
		}
		var parent [32]byte
		switch prev, ok := d.outs[q-1]; {
		case q == 1:
			parent = chain.GenesisHash(d.origin)
		case ok:
			parent = chain.Hash(prev.link, prev.payload)
		default:
			continue
		}
		if e.link.Parent != parent {
			s.violate("d%d chain broken at %d", d.idx, q)
		}
	}
	head, hh := dm.ChainHead()
	if e, ok := d.outs[head.Sequence]; ok && (e.link != head || chain.Hash(e.link, e.payload) != hh) {
		s.violate("d%d chain head %d does not match the output a client saw there", d.idx, head.Sequence)
	}
}

// shutdown ends every goroutine of the bubble.
func (s *sim) shutdown() {
	s.halt()
	s.mu.Lock()
	gates := s.gates
	s.gates = nil
	s.mu.Unlock()
	for _, g := range gates {
		close(g.ch)
	}
	for i, n := range s.nodes {
		if n.mig != nil {
			s.crash(i)
		}
	}
	s.mu.Lock()
	for id := range s.net.calls {
		s.answerLocked(id, response{err: errLost})
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// flushAsync appends the outcomes of the last step in a fixed order.
func (s *sim) flushAsync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Strings(s.async)
	for _, a := range s.async {
		s.trace = append(s.trace, "  "+a)
	}
	s.async = s.async[:0]
}

// result is one run's outcome.
type result struct {
	hash    string
	trace   []string
	failure string // empty: every invariant held
	steps   int    // steps executed before the first violation
}

func (r result) failed() bool { return r.failure != "" }

// runSim runs steps on a fresh cluster in its own synctest bubble.
func runSim(t *testing.T, seed int64, cfg config, module []byte, steps []step) result {
	var res result
	t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, uint64(seed))
			s := &sim{cfg: cfg, seed: seed, module: module, tick: 20 * time.Millisecond, linger: *flagLinger, longOutages: *flagLong, crashMid: *flagCrashMid}
			if err := s.setup(); err != nil {
				res.failure = "setup: " + err.Error()
				return
			}
			synctest.Wait()
			res.steps = len(steps)
			for i, st := range steps {
				// Steps happen at distinct instants, so timers they start
				// do not fire together with other steps' timers.
				time.Sleep(time.Microsecond + time.Nanosecond)
				desc := s.exec(st)
				s.mu.Lock()
				s.trace = append(s.trace, fmt.Sprintf("%3d %s", i, desc))
				s.mu.Unlock()
				synctest.Wait()
				s.flushAsync()
				if *flagNet {
					s.mu.Lock()
					s.trace = append(s.trace, "    net:"+s.dumpNet())
					s.mu.Unlock()
				}
				s.checkStep()
				if len(s.bad) > 0 {
					res.steps = i + 1
					break
				}
			}
			if len(s.bad) == 0 {
				s.settle(mrand.New(mrand.NewPCG(uint64(seed), 0x5e771e)))
				s.flushAsync()
				s.checkEnd()
			}
			s.shutdown()
			res.trace = s.trace
			if len(s.bad) > 0 {
				res.failure = strings.Join(s.bad, "; ")
			}
			h := sha256.New()
			for _, l := range s.trace {
				h.Write([]byte(l))
				h.Write([]byte{'\n'})
			}
			h.Write([]byte(res.failure))
			res.hash = hex.EncodeToString(h.Sum(nil)[:8])
		})
	})
	return res
}
