package driver

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/envelope"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

type role uint8

const (
	roleOrch role = iota
	roleSource
	roleTarget
)

// String names the role as log lines do ("role" is always a name).
func (r role) String() string {
	switch r {
	case roleOrch:
		return "orchestrator"
	case roleSource:
		return "source"
	case roleTarget:
		return "target"
	}
	return "role?"
}

// logID is a migration id as log lines show it: 16 hex digits, like a
// daemon id, never a JSON number that readers holding doubles would round.
func logID(id uint64) string { return fmt.Sprintf("%016x", id) }

// run is one migration id on this node, with the machine of every role
// this node plays in it.
type run struct {
	id     uint64
	orch   *protocol.Orchestrator
	src    *protocol.Source
	tgt    *protocol.Target
	handle *Handle
	// frozenSlot: the source holds one of m.frozen's slots (frozen.go).
	frozenSlot bool

	// The senders waiting for their event's outputs, by the token their
	// event went into the machine with: the machine hands the token back
	// on the effect that disposes of the event, so nothing here mirrors
	// which events it keeps.
	srcW, tgtW map[protocol.Token]*waiter
	nextTok    protocol.Token

	// The worker's queue (worker.go); guarded by m.mu. While front is
	// set, jobs go in at ins instead of the tail.
	jobs    []func()
	working bool
	front   bool
	ins     int

	// Source side: the frozen daemon.
	daemon  *engine.Daemon
	srcPlan wire.Plan

	// Target side.
	tgtPlan  wire.Plan
	restored *engine.Daemon

	finishedAt time.Time
	stats      Stats
	base       *snapshot.Snapshot // pre-copied to the target (source side)
}

// Stats describe a migration as its source saw it.
type Stats struct {
	SnapshotBytes  int           // encoded snapshot size
	WireBytes      int           // what went on the wire after compression
	ChunkBytesSent int           // snapshot bytes queued to the target so far
	EventsBuffered int           // events that arrived while frozen (replayed on the target)
	EventsForward  int           // events forwarded after the route flipped
	FrozenAt       time.Time     // the daemon stopped processing here
	HandedOverAt   time.Time     // the target confirmed it is live
	Pause          time.Duration // HandedOverAt - FrozenAt: an upper bound of the time no event was processed
	PreCopied      bool          // a base went ahead; SnapshotBytes is then the delta
	// Rounds of dirtied pages sent while the daemon ran, after the base;
	// PreCopyBytes is the wire size of the base, then of each round.
	Rounds       int
	PreCopyBytes []int
	// Converged: a round found the dirty set at or under the threshold
	// before the bound on rounds (or the set stopped shrinking: not).
	Converged bool
}

func (r *run) plan() wire.Plan {
	if r.src != nil {
		return r.srcPlan
	}
	return r.tgtPlan
}

func (r *run) allDone() bool {
	done := true
	if r.orch != nil {
		d, _ := r.orch.Result()
		done = done && d
	}
	if r.src != nil {
		d, _ := r.src.Result()
		done = done && d
	}
	if r.tgt != nil {
		d, _ := r.tgt.Result()
		done = done && d
	}
	return done
}

// waiter is a sender blocked until its event has been applied somewhere.
type waiter struct {
	ev    engine.Event
	tok   protocol.Token
	fwd   bool // the source machine forwarded it (else buffered for replay)
	refwd bool // its forward failed before the handover
	outs  []engine.Output
	err   error
	done  chan struct{}
}

func newWaiter(ev engine.Event) *waiter {
	ev.Payload = append([]byte(nil), ev.Payload...)
	return &waiter{ev: ev, done: make(chan struct{})}
}

func (w *waiter) resolve(outs []engine.Output, err error) {
	select {
	case <-w.done:
		return
	default:
	}
	w.outs, w.err = outs, err
	close(w.done)
}

func (w *waiter) wait(ctx context.Context) ([]engine.Output, error) {
	select {
	case <-w.done:
		return w.outs, w.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// token registers a waiter under a fresh token in ws. Caller holds m.mu.
func (r *run) token(ws map[protocol.Token]*waiter, w *waiter) protocol.Token {
	r.nextTok++
	w.tok = r.nextTok
	ws[w.tok] = w
	return w.tok
}

// dropRefs lets go of the daemons and senders of a forgotten run that a
// caller's handle may still keep reachable. Caller holds m.mu.
func (r *run) dropRefs() {
	r.daemon, r.restored = nil, nil
	clear(r.srcW)
	clear(r.tgtW)
}

// resolveSeq answers the sender of the replayed event the target reports
// on: the source machine names its token by input sequence. Caller holds
// m.mu.
func (r *run) resolveSeq(rep report) {
	tok, ok := r.src.ReplayedToken(rep.Seq)
	w := r.srcW[tok]
	if !ok || w == nil {
		return
	}
	delete(r.srcW, tok)
	var err error
	if rest, dup := strings.CutPrefix(rep.Err, engine.ErrDuplicateEvent.Error()); dup {
		// Keep it typed: for the sender a duplicate is an acknowledgement.
		err = fmt.Errorf("%w%s", engine.ErrDuplicateEvent, rest)
	} else if rep.Err != "" {
		err = errors.New(rep.Err)
	}
	w.resolve(rep.Outputs, err)
}

func (m *Migrator) runFor(id uint64) *run {
	r := m.runs[id]
	if r == nil {
		r = &run{id: id, srcW: make(map[protocol.Token]*waiter), tgtW: make(map[protocol.Token]*waiter)}
		m.runs[id] = r
	}
	return r
}

// dispatch hands a message to every machine of its migration on this node
// whose role takes it, creating the source or target machine on first
// contact. Caller holds m.mu.
func (m *Migrator) dispatch(from NodeID, msg wire.Message) {
	now := time.Now()
	id := msg.Hdr().ID
	r := m.runs[id]
	switch msg.Kind() {
	case wire.KindStart:
		st := msg.(wire.Start)
		if (r == nil || r.src == nil) && st.Plan.Source == m.self && m.busySource(st.Plan.Origin, id) {
			// Another migration of this daemon is under way here (started
			// by another orchestrator): refuse, never freeze it twice.
			abort := wire.Abort{Header: st.Header, Phase: wire.PhaseSnapshot, Reason: wire.ReasonAlreadyMigrating,
				Text: fmt.Sprintf("daemon %016x is already migrating from this node", st.Plan.Origin)}
			if frame, err := encodeMessage(abort); err == nil && from != m.self {
				m.peer(from).push(frame)
			} else if from == m.self {
				m.dispatch(m.self, abort)
			}
			return
		}
		if (r == nil || r.src == nil) && msg.(wire.Start).Plan.Source == m.self {
			s, err := protocol.NewSource(protocol.SourceConfig{Self: m.self, Limits: m.cfg.Limits, Timing: m.cfg.Timing})
			if err != nil {
				return
			}
			r = m.runFor(id)
			r.src = s
			r.srcPlan = msg.(wire.Start).Plan
		}
	case wire.KindPrepare:
		if (r == nil || r.tgt == nil) && msg.(wire.Prepare).Plan.Target == m.self {
			t, err := protocol.NewTarget(protocol.TargetConfig{Self: m.self, Limits: m.cfg.Limits, Timing: m.cfg.Timing})
			if err != nil {
				return
			}
			r = m.runFor(id)
			r.tgt = t
			r.tgtPlan = msg.(wire.Prepare).Plan
		}
	}
	if r == nil {
		return
	}
	if r.orch != nil && protocol.RoleOrchestrator.Accepts(msg.Kind()) {
		out, err := r.orch.Step(from, msg, now)
		m.logErr(r, "orchestrator", err)
		m.apply(r, roleOrch, out)
	}
	if r.src != nil && protocol.RoleSource.Accepts(msg.Kind()) {
		out, err := r.src.Step(from, msg, now)
		m.logErr(r, "source", err)
		m.apply(r, roleSource, out)
	}
	if r.tgt != nil && protocol.RoleTarget.Accepts(msg.Kind()) {
		out, err := r.tgt.Step(from, msg, now)
		m.logErr(r, "target", err)
		m.apply(r, roleTarget, out)
	}
}

// busySource reports whether a source machine of another migration id is
// still running for origin on this node. Caller holds m.mu.
func (m *Migrator) busySource(origin, id uint64) bool {
	for rid, r := range m.runs {
		if rid == id || r.src == nil || r.srcPlan.Origin != origin {
			continue
		}
		if done, _ := r.src.Result(); !done {
			return true
		}
	}
	return false
}

func goesLive(effects []protocol.Effect) bool {
	for _, e := range effects {
		if _, ok := e.(protocol.GoLive); ok {
			return true
		}
	}
	return false
}

// send encodes one message to a peer and queues it, on the worker.
func (m *Migrator) send(r *run, ob protocol.Outbound) {
	frame, err := encodeMessage(ob.Msg)
	if err != nil {
		m.cfg.Logger.Warn("migration message not encodable", "migration", logID(r.id), "err", err)
		return
	}
	c, isChunk := ob.Msg.(wire.SnapshotChunk)
	m.mu.Lock()
	if isChunk {
		r.stats.ChunkBytesSent += len(c.Data)
	}
	q := m.peer(ob.To)
	m.mu.Unlock()
	if isChunk {
		q.pushChunk(chunkKey{id: c.Header.ID, seq: c.SnapshotSeq, attempt: c.Header.Attempt, index: c.Index}, frame)
		return
	}
	q.push(frame)
}

// feed steps a result into r's machine of role who. Caller holds m.mu.
func (m *Migrator) feed(r *run, who role, in protocol.Input) {
	now := time.Now()
	switch who {
	case roleSource:
		if r.src != nil {
			out, err := r.src.Handle(in, now)
			m.logErr(r, "source", err)
			m.apply(r, roleSource, out)
		}
	case roleTarget:
		if r.tgt != nil {
			out, err := r.tgt.Handle(in, now)
			m.logErr(r, "target", err)
			m.apply(r, roleTarget, out)
		}
	}
}

// async runs slow work (network, restore) off the lock and feeds its
// result back under it.
func (m *Migrator) async(r *run, who role, work func(ctx context.Context) protocol.Input) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		in := work(ctx)
		m.mu.Lock()
		defer m.mu.Unlock()
		if in != nil {
			m.feed(r, who, in)
		}
	}()
}

// effect performs one effect on the worker, off the lock: it takes m.mu
// only to read or update the run's bookkeeping.
func (m *Migrator) effect(r *run, b batch, e protocol.Effect) {
	rt := m.cfg.Runtime
	who := b.who
	switch e := e.(type) {
	// --- source ---
	case protocol.FreezeAndBuffer:
		// Frozen together with the snapshot in TakeSnapshot: one step, so no
		// event falls between them.
	case protocol.TakeSnapshot:
		m.takeSnapshot(r, e)
	case protocol.AllowModuleFetch:
		// Every registered module is served by digest to cluster members.
	case protocol.FlipRoute:
		m.cfg.Mesh.FlipRoute(e.Origin, e.To)
	case protocol.ForwardEvent:
		m.mu.Lock()
		w := r.srcW[e.Token]
		if w == nil {
			// Nobody here waits for it; deliver it all the same.
			w = newWaiter(engine.Event{Sender: e.Event.Sender, Seq: e.Event.SenderSeq, Payload: e.Event.Payload, Once: e.Event.Once})
		}
		m.forward(r, e.To, w)
		m.mu.Unlock()
	case protocol.ResumeLocal:
		m.resumeLocal(r, e, b.stale)
	case protocol.Unsubscribe:
		if f := m.cfg.Hooks.Unsubscribe; f != nil {
			f(e.Origin)
		}
	case protocol.Release:
		m.mu.Lock()
		r.stats.HandedOverAt = time.Now()
		r.stats.Pause = r.stats.HandedOverAt.Sub(r.stats.FrozenAt)
		d := r.daemon
		m.mu.Unlock()
		if d != nil {
			_ = rt.Stop(context.Background(), d.Origin())
			if f := m.cfg.Hooks.Released; f != nil {
				f(d.Origin())
			}
		}
	case protocol.WipeKey:
		m.mu.Lock()
		d := r.daemon
		m.mu.Unlock()
		if d != nil {
			d.WipeKey()
		}
	// --- target ---
	case protocol.Admit:
		m.admit(r, e)
	case protocol.FetchModule:
		m.async(r, roleTarget, func(ctx context.Context) protocol.Input {
			bs, err := m.cfg.Mesh.FetchModule(ctx, e.From, e.Digest)
			if err == nil {
				_, err = rt.RegisterModule(ctx, bs, "")
			}
			return protocol.ModuleFetched{Attempt: e.Attempt, Digest: e.Digest, Err: err}
		})
	case protocol.RestoreSnapshot:
		m.restore(r, e)
	case protocol.ApplyEvent:
		m.applyEvent(r, e)
	case protocol.GoLive:
		m.mu.Lock()
		d := r.restored
		m.mu.Unlock()
		if d != nil {
			d.SetInterceptor(nil)
		}
		m.cfg.Mesh.GoLive(e.Origin)
	case protocol.Resubscribe:
		if f := m.cfg.Hooks.Resubscribe; f != nil {
			f(e.Origin)
		}
	case protocol.Discard:
		m.mu.Lock()
		d := r.restored
		r.restored = nil
		for _, w := range b.stale {
			delete(r.tgtW, w.tok)
		}
		m.mu.Unlock()
		if d != nil {
			_ = rt.Stop(context.Background(), d.Origin())
		}
		for _, w := range b.stale {
			w.resolve(nil, fmt.Errorf("migration of %016x aborted before the target went live", e.Origin))
		}
	// --- every role ---
	case protocol.Done:
		m.done(r, who, e)
	}
}

func (m *Migrator) done(r *run, who role, e protocol.Done) {
	m.mu.Lock()
	if who == roleSource {
		m.releaseFrozenLocked(r)
	}
	if who == roleTarget {
		m.inbound.release(inboundKey{id: r.id})
	}
	if who == roleSource && e.Err == nil {
		m.reforward(r)
		m.expireWaiters(r)
	}
	if h := r.handle; who == roleOrch && h != nil {
		// Behind whatever this node's other roles of the migration queued
		// by now (a source's handover: release, hooks), so Wait returns
		// once they took place.
		m.enqueue(r, func() {
			// The runtime keeps the last failure per daemon for
			// PeekMigrationFailure; a success clears it. Recorded before
			// the handle finishes, so whoever waited on it reads it.
			m.cfg.Runtime.RecordMigrationFailure(h.origin, e.Err)
			m.mu.Lock()
			h.finish(e.Err)
			m.mu.Unlock()
		})
	}
	d := r.daemon
	m.mu.Unlock()
	if who == roleSource && e.Err != nil && d != nil {
		// Failed with the source keeping the daemon: ResumeLocal has
		// already run; make sure nothing stays intercepted.
		d.SetInterceptor(nil)
	}
}

func (m *Migrator) takeSnapshot(r *run, e protocol.TakeSnapshot) {
	fail := func(err error) {
		m.input(r, roleSource, protocol.SnapshotFailed{Attempt: e.Attempt, Err: err})
	}
	d, err := m.cfg.Runtime.Daemon(e.Origin)
	if err != nil {
		fail(&protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()})
		return
	}
	if !m.acquireFrozen(r) {
		fail(&protocol.Failure{Reason: wire.ReasonStateFailed, Text: "migration ended before its daemon could freeze"})
		return
	}
	m.mu.Lock()
	r.daemon = d
	r.stats.FrozenAt = time.Now()
	base := r.base
	m.mu.Unlock()
	if base != nil {
		delta, err := d.FreezeAndSnapshotDelta(context.Background(), base, m.sourceInterceptor(r, d))
		if err == nil {
			m.finishSnapshot(r, e, d, delta.Snap, delta.Removed, true)
			return
		}
		m.cfg.Logger.Info("delta snapshot failed; sending a full one", "err", err)
		m.mu.Lock()
		r.base = nil
		m.mu.Unlock()
	}
	snap, err := d.FreezeAndSnapshot(context.Background(), m.sourceInterceptor(r, d))
	if err != nil {
		fail(&protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()})
		return
	}
	m.finishSnapshot(r, e, d, snap, nil, false)
}

// finishSnapshot encodes, packs and seals the frozen daemon's snapshot (or
// delta) and feeds it to the source machine.
func (m *Migrator) finishSnapshot(r *run, e protocol.TakeSnapshot, d *engine.Daemon, snap *snapshot.Snapshot, removed []uint32, isDelta bool) {
	fail := func(err error) {
		d.SetInterceptor(nil)
		m.input(r, roleSource, protocol.SnapshotFailed{Attempt: e.Attempt, Err: err})
	}
	data, err := d.SignSnapshot(snap)
	if err != nil {
		fail(&protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()})
		return
	}
	var env []byte
	if e.Seal {
		pub, err := m.cfg.Mesh.StaticKey(e.Target)
		if err == nil {
			env, err = d.SealSeed(rand.Reader, pub, envelope.Binding{
				MigrationID: e.MigrationID, Origin: e.Origin, Target: string(e.Target), ChainHead: snap.HeadHash,
			})
		}
		if err != nil {
			fail(protocol.IdentityFailed(err))
			return
		}
	}
	var packed []byte
	if isDelta {
		packed = m.encodeDelta(removed, data)
	} else {
		packed = m.pack.pack(data)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.stats.SnapshotBytes = len(data)
	r.stats.WireBytes = len(packed)
	m.feed(r, roleSource, protocol.SnapshotTaken{Attempt: e.Attempt, Snapshot: packed, SnapshotSeq: snap.Sequence, InputSeq: snap.InputSeq, Envelope: env})
}

// sourceInterceptor takes every event for the frozen daemon: the source
// machine buffers it (numbered with the daemon's next input sequence) or,
// after the flip, forwards it; the sender waits for the outputs.
func (m *Migrator) sourceInterceptor(r *run, d *engine.Daemon) engine.Interceptor {
	return func(ctx context.Context, ev engine.Event) ([]engine.Output, error) {
		m.mu.Lock()
		if done, serr := r.src.Result(); done {
			handedOver, target := serr == nil, r.srcPlan.Target
			var settled <-chan struct{}
			if !handedOver {
				// The machine gave the daemon back; deliver only after
				// the worker replayed what it kept (and unhooked us).
				settled = m.barrier(r)
			}
			m.mu.Unlock()
			if settled != nil {
				if err := waitFor(ctx, settled); err != nil {
					return nil, err
				}
			}
			return m.afterSource(ctx, d, ev, handedOver, target)
		}
		w := newWaiter(ev)
		tok := r.token(r.srcW, w)
		out, err := r.src.Handle(protocol.EventArrived{Sender: ev.Sender, SenderSeq: ev.Seq, Payload: w.ev.Payload, Once: ev.Once, Token: tok}, time.Now())
		if err != nil {
			delete(r.srcW, tok)
			m.mu.Unlock()
			return nil, err
		}
		for _, e := range out.Effects {
			if f, ok := e.(protocol.ForwardEvent); ok && f.Token == tok {
				w.fwd = true
			}
		}
		if w.fwd {
			r.stats.EventsForward++
		} else {
			r.stats.EventsBuffered++
		}
		m.apply(r, roleSource, out)
		m.mu.Unlock()
		return w.wait(ctx)
	}
}

// afterSource handles an event that reached the interceptor after the
// source machine finished (state read under the lock by the caller):
// handed over → forward to the new home; otherwise deliver here again,
// interceptably, so a newer freeze still sees it.
func (m *Migrator) afterSource(ctx context.Context, d *engine.Daemon, ev engine.Event, handedOver bool, target NodeID) ([]engine.Output, error) {
	if handedOver {
		return m.cfg.Mesh.Forward(ctx, target, d.Origin(), ev)
	}
	return d.Deliver(ctx, ev)
}

func (m *Migrator) forward(r *run, to NodeID, w *waiter) {
	origin := r.srcPlan.Origin
	m.forwarder(to).forwardOn(origin, func() {
		var outs []engine.Output
		var err error
		// Retry only what surely did not arrive: a delivery that timed out
		// may be held by the target and would be applied twice.
		for try := 0; try < 3; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			outs, err = m.cfg.Mesh.Forward(ctx, to, origin, w.ev)
			cancel()
			if err == nil || !errors.Is(err, ErrNotDelivered) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if err == nil {
			r.forgetSrc(w)
			w.resolve(outs, nil)
			return
		}
		if done, ferr := r.src.Result(); done && ferr == nil {
			r.forgetSrc(w)
			w.resolve(nil, err)
			return
		}
		// Not handed over yet: the source machine keeps a copy, so an
		// abort applies it here (ResumeLocal); a handover sends it again.
		w.refwd = true
	})
}

// reforward sends again, after the handover, the events whose forward
// failed before it: the target is live now, and the source machine no
// longer keeps them. Caller holds m.mu.
func (m *Migrator) reforward(r *run) {
	var again []*waiter
	for _, w := range r.srcW {
		if w.refwd {
			again = append(again, w)
		}
	}
	// Tokens grow with arrival: send them again in the order they came.
	slices.SortFunc(again, func(a, b *waiter) int { return cmp.Compare(a.tok, b.tok) })
	for _, w := range again {
		w.refwd = false
		m.forward(r, r.srcPlan.Target, w)
	}
}

// forgetSrc drops a resolved source waiter. Caller holds m.mu.
func (r *run) forgetSrc(w *waiter) {
	if r.srcW[w.tok] == w {
		delete(r.srcW, w.tok)
	}
}

// resumeLocal applies, on the worker, the events the source machine kept
// and answers each one's sender by its token; stale are the senders that
// waited when the machine gave up.
func (m *Migrator) resumeLocal(r *run, e protocol.ResumeLocal, stale []*waiter) {
	m.mu.Lock()
	d := r.daemon
	senders := make([]*waiter, len(e.Events))
	for i := range e.Events {
		if i < len(e.Tokens) {
			senders[i] = r.srcW[e.Tokens[i]]
		}
	}
	for _, w := range stale {
		r.forgetSrc(w)
	}
	m.mu.Unlock()
	if d != nil {
		for i, ev := range e.Events {
			outs, err := d.Apply(context.Background(), engine.Event{Sender: ev.Sender, Seq: ev.SenderSeq, Payload: ev.Payload, Once: ev.Once})
			if w := senders[i]; w != nil {
				w.resolve(outs, err)
			}
		}
	}
	// Anyone still waiting sent an event the machine did not keep: it
	// cannot be applied here without risking a second application.
	for _, w := range stale {
		w.resolve(nil, fmt.Errorf("migration of %016x aborted while the event was in flight; it may not have been applied", e.Origin))
	}
	if d != nil {
		d.SetInterceptor(nil)
	}
}

// admit answers the target machine's Admit on the worker.
func (m *Migrator) admit(r *run, e protocol.Admit) {
	rt := m.cfg.Runtime
	a := protocol.Admission{Attempt: e.Attempt, Ready: rt.AcceptsMigrations() == nil}
	if _, err := rt.Kind(e.KindDigest); err == nil {
		a.HaveModule = true
	}
	m.mu.Lock()
	_, registered := m.registered[regKey{e.KindDigest, e.Origin}]
	expected := m.expected[e.Origin]
	m.mu.Unlock()
	if e.LookupRegisteredIdentity {
		a.RegisteredIdentity = registered
	}
	if m.cfg.RequireExpected && !registered && expected != e.KindDigest {
		a.Err = &protocol.Failure{Reason: wire.ReasonFactoryNotFound,
			Text: fmt.Sprintf("node does not expect daemon %016x of %s (ExpectMigration)", e.Origin, e.KindDigest)}
	}
	if admit := m.cfg.Hooks.Admit; admit != nil && a.Err == nil {
		if err := admit(e.Origin); err != nil {
			a.Err = &protocol.Failure{Reason: wire.ReasonTargetUnavailable, Text: err.Error()}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.Ready && a.Err == nil {
		a.Ready, a.Err = m.admitBytes(r.id, e.TotalBytes)
	}
	m.feed(r, roleTarget, a)
}

func (m *Migrator) restore(r *run, e protocol.RestoreSnapshot) {
	m.mu.Lock()
	reg, hasReg := m.registered[regKey{e.KindDigest, e.Origin}]
	m.mu.Unlock()
	static := m.cfg.StaticKey
	m.async(r, roleTarget, func(ctx context.Context) protocol.Input {
		res := protocol.Restored{Attempt: e.Attempt}
		var removed []uint32
		var raw []byte
		var err error
		isDelta := len(e.Snapshot) > 0 && e.Snapshot[0] == packDelta
		if isDelta {
			removed, raw, err = m.decodeDelta(e.Snapshot)
		} else {
			raw, err = m.pack.unpack(e.Snapshot)
		}
		if err != nil {
			res.Err = &protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()}
			return res
		}
		snap, err := snapshot.Decode(raw, snapshot.DefaultLimits())
		if err != nil {
			res.Err = &protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()}
			return res
		}
		var id identity.Identity
		switch {
		case len(e.Envelope) > 0:
			id, err = envelope.Open(e.Envelope, static, envelope.Expect{EntityID: snap.EntityID, Binding: envelope.Binding{
				MigrationID: e.MigrationID, Origin: e.Origin, Target: string(e.Target), ChainHead: snap.HeadHash,
			}})
			if err != nil {
				res.Err = protocol.IdentityFailed(err)
				return res
			}
		case hasReg:
			id = reg
		default:
			res.Err = protocol.IdentityFailed(errors.New("no identity sealed and none registered on the target"))
			return res
		}
		m.mu.Lock()
		icpt := m.targetInterceptor(r)
		st := m.takeStaged(e.MigrationID)
		src := r.tgtPlan.Source
		m.mu.Unlock()
		var d *engine.Daemon
		switch {
		case !isDelta:
			if st != nil {
				st.s.Discard(ctx)
			}
			d, err = m.cfg.Runtime.SpawnFromSnapshot(ctx, e.KindDigest, id, snap, engine.SpawnOptions{Interceptor: icpt})
		case st == nil || st.from != src:
			err = errors.New("delta snapshot without a pre-copied base from this source")
		default:
			d, err = st.s.Commit(ctx, id, &engine.Delta{Snap: snap, Removed: removed}, icpt)
		}
		if err != nil {
			res.Err = &protocol.Failure{Reason: wire.ReasonStateFailed, Text: err.Error()}
			return res
		}
		m.mu.Lock()
		if done, _ := r.tgt.Result(); done || r.tgt.Attempt() != e.Attempt {
			// Aborted (or superseded) while restoring: Discard already ran
			// and found nothing, so this copy must not stay registered.
			m.mu.Unlock()
			_ = m.cfg.Runtime.Stop(ctx, d.Origin())
			res.Err = &protocol.Failure{Reason: wire.ReasonStateFailed, Text: "restore finished after the attempt ended"}
			return res
		}
		r.restored = d
		m.mu.Unlock()
		res.InputSeq = snap.InputSeq
		return res
	})
}

// targetInterceptor holds events that reach the restored daemon before it
// is live; the target machine applies them right after the replayed ones.
func (m *Migrator) targetInterceptor(r *run) engine.Interceptor {
	return func(ctx context.Context, ev engine.Event) ([]engine.Output, error) {
		m.mu.Lock()
		if r.tgt.Live() {
			// Live in the machine; the worker may still be applying the
			// held events, which go first.
			settled := m.barrier(r)
			m.mu.Unlock()
			if err := waitFor(ctx, settled); err != nil {
				return nil, err
			}
			m.mu.Lock()
			d := r.restored
			m.mu.Unlock()
			if d == nil {
				return nil, engine.ErrDaemonNotFound
			}
			return d.Apply(ctx, ev)
		}
		w := newWaiter(ev)
		tok := r.token(r.tgtW, w)
		out, err := r.tgt.Handle(protocol.EventArrived{Sender: ev.Sender, SenderSeq: ev.Seq, Payload: w.ev.Payload, Once: ev.Once, Token: tok}, time.Now())
		if err != nil {
			delete(r.tgtW, tok)
			m.mu.Unlock()
			return nil, err
		}
		m.apply(r, roleTarget, out)
		m.mu.Unlock()
		return w.wait(ctx)
	}
}

// applyEvent applies a replayed or held event on the target, on the
// worker. A held event's sender waits here (its token); a replayed event's
// sender waits on the source, so its outputs travel back there.
func (m *Migrator) applyEvent(r *run, e protocol.ApplyEvent) {
	m.mu.Lock()
	d := r.restored
	var w *waiter
	if e.Token != 0 {
		w = r.tgtW[e.Token]
		delete(r.tgtW, e.Token)
	}
	src := r.tgtPlan.Source
	m.mu.Unlock()
	var outs []engine.Output
	var err error
	if d == nil {
		err = engine.ErrDaemonNotFound
	} else {
		outs, err = d.Apply(context.Background(), engine.Event{Sender: e.Event.Sender, Seq: e.Event.SenderSeq, Payload: e.Event.Payload, Once: e.Event.Once})
	}
	if e.Token != 0 {
		if w != nil {
			w.resolve(outs, err)
		}
		return
	}
	rep := report{ID: r.id, Seq: e.Event.Seq, Outputs: outs}
	if err != nil {
		rep.Err = err.Error()
	}
	m.mu.Lock()
	q := m.peer(src)
	m.mu.Unlock()
	q.push(encodeReport(rep))
}

// expireWaiters answers senders whose replayed event's outputs never came
// back with ErrOutputsLost (the event was applied on the target), so no
// sender waits forever. Caller holds m.mu.
func (m *Migrator) expireWaiters(r *run) {
	replayed := false
	for _, w := range r.srcW {
		replayed = replayed || !w.fwd
	}
	if !replayed {
		return
	}
	time.AfterFunc(m.cfg.OutputsGrace, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for tok, w := range r.srcW {
			if !w.fwd {
				delete(r.srcW, tok)
				w.resolve(nil, ErrOutputsLost)
			}
		}
	})
}
