package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// This file is a simulated three-node mesh for the state machines: a lossy,
// reordering network that carries every migration message through the wire
// codec, a reliable channel for ordinary event deliveries, and a toy daemon
// whose state is the list of event ids it applied. Both the property test
// and the focused tests drive it.

const simOrigin = 0xd43
const simDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type packet struct {
	from, to NodeID
	frame    []byte
}

type delivery struct {
	to NodeID
	ev EventArrived
}

// daemon is the simulated guest: a counter of applied events that also
// remembers which, so double application is visible.
type daemon struct {
	inputSeq uint64
	applied  []uint64
}

func (d *daemon) clone() *daemon {
	return &daemon{inputSeq: d.inputSeq, applied: slices.Clone(d.applied)}
}

type simConfig struct {
	orchOn            string // "source", "target" or "third"
	notReadyAttempts  uint32
	haveModule        bool
	transportIdentity bool
	stateless         bool
	limits            Limits
	retry             RetryPolicy
	noEnvelope        bool // the I/O layer "forgets" to seal
	noRegistered      bool // no pre-registered identity on the target
}

type sim struct {
	cfg        simConfig
	now        time.Time
	o, s, t    NodeID
	orch       *Orchestrator
	src        *Source
	tgt        *Target
	net        []packet
	events     []delivery
	srcD, tgtD *daemon
	srcFrozen  bool
	srcRoute   NodeID // "" = local
	tgtLive    bool
	tgtCrashed bool
	crashLive  bool // the target crashed after going live
	snapshots  map[uint32]*daemon
	sent       []uint64
	nextEvent  uint64
	violations []string
	errs       []error
	effects    []string
	done       map[Role]error
	doneCount  map[Role]int
	book       *tokenBook
}

func newSim(cfg simConfig, preEvents int) *sim {
	m := &sim{cfg: cfg, now: time.Unix(1000, 0), s: "S", t: "T", srcD: &daemon{},
		snapshots: map[uint32]*daemon{}, done: map[Role]error{}, doneCount: map[Role]int{}, book: newTokenBook()}
	switch cfg.orchOn {
	case "source":
		m.o = m.s
	case "target":
		m.o = m.t
	default:
		m.o = "O"
	}
	for range preEvents {
		m.inject()
	}
	var err error
	if m.src, err = NewSource(SourceConfig{Self: m.s, Limits: cfg.limits}); err != nil {
		panic(err)
	}
	if m.tgt, err = NewTarget(TargetConfig{Self: m.t, Limits: cfg.limits}); err != nil {
		panic(err)
	}
	plan := wire.Plan{Origin: simOrigin, KindDigest: simDigest, Source: m.s, Target: m.t, Orchestrator: m.o,
		TransportIdentity: cfg.transportIdentity}
	orch, out, err := NewOrchestrator(OrchestratorConfig{ID: 99, Plan: plan, Retry: cfg.retry}, m.now)
	if err != nil {
		panic(err)
	}
	m.orch = orch
	m.apply(RoleOrchestrator, out)
	return m
}

func (m *sim) violate(format string, args ...any) {
	m.violations = append(m.violations, fmt.Sprintf(format, args...))
}

func (m *sim) alive(n NodeID) bool { return !(m.tgtCrashed && n == m.t) }

// inject sends a fresh event to the daemon at the node senders believe it is
// on: the source (which forwards once it has flipped).
func (m *sim) inject() {
	m.nextEvent++
	id := m.nextEvent
	m.sent = append(m.sent, id)
	m.arrive(m.s, EventArrived{Sender: 7, SenderSeq: id, Payload: binary.LittleEndian.AppendUint64(nil, id)})
}

// arrive is the I/O layer of node n receiving an ordinary event delivery.
func (m *sim) arrive(n NodeID, ev EventArrived) {
	if !m.alive(n) {
		return
	}
	id := binary.LittleEndian.Uint64(ev.Payload)
	switch n {
	case m.s:
		if m.srcD != nil && !m.srcFrozen && m.srcRoute == "" {
			m.applyTo(m.srcD, "source", id, 0)
			return
		}
		ev.Token = m.book.issue(RoleSource, id)
		out, err := m.src.Handle(ev, m.now)
		m.book.settle(ev.Token, err)
		m.check(err)
		m.apply(RoleSource, out)
	case m.t:
		if m.tgtLive {
			m.applyTo(m.tgtD, "target", id, 0)
			return
		}
		// Not live: hold via the machine; an aborted target drops it (the
		// source resumed with its own copy).
		ev.Token = m.book.issue(RoleTarget, id)
		out, err := m.tgt.Handle(ev, m.now)
		m.book.settle(ev.Token, err)
		if err != nil && !errors.Is(err, ErrFinished) {
			m.violate("target refused a forwarded event: %v", err)
		}
		m.apply(RoleTarget, out)
	}
}

func (m *sim) applyTo(d *daemon, where string, id, seq uint64) {
	if d == nil {
		m.violate("%s applied event %d with no daemon", where, id)
		return
	}
	if seq != 0 && seq != d.inputSeq+1 {
		m.violate("%s applied input seq %d after %d", where, seq, d.inputSeq)
	}
	if slices.Contains(d.applied, id) {
		m.violate("%s applied event %d twice", where, id)
	}
	d.inputSeq++
	d.applied = append(d.applied, id)
}

// check accepts only the typed errors the machines document.
func (m *sim) check(err error) {
	if err == nil {
		return
	}
	m.errs = append(m.errs, err)
	for _, typed := range []error{ErrUnexpectedSender, ErrWrongPhase, ErrUnknownMigration, ErrStaleAttempt,
		ErrInvalid, ErrFinished, ErrPastCutover, ErrReplayGap, ErrChunk, ErrAlreadyMigrating} {
		if errors.Is(err, typed) {
			return
		}
	}
	m.violate("untyped error: %v", err)
}

func (m *sim) nodeOf(r Role) NodeID {
	switch r {
	case RoleOrchestrator:
		return m.o
	case RoleSource:
		return m.s
	}
	return m.t
}

// apply is the I/O layer: send messages and perform effects in order.
func (m *sim) apply(r Role, out Output) {
	from := m.nodeOf(r)
	for _, ob := range out.Messages {
		frame, err := wire.Encode(ob.Msg)
		if err != nil {
			m.violate("%s sent an unencodable %s: %v", r, ob.Msg.Kind(), err)
			continue
		}
		if m.alive(from) {
			m.net = append(m.net, packet{from: from, to: ob.To, frame: frame})
		}
	}
	for _, e := range out.Effects {
		m.effects = append(m.effects, fmt.Sprintf("%s:%T", r, e))
		m.effect(r, e)
	}
}

func (m *sim) effect(r Role, e Effect) {
	switch e := e.(type) {
	case Done:
		m.done[r] = e.Err
		m.doneCount[r]++
	case FreezeAndBuffer:
		m.srcFrozen = true
	case TakeSnapshot:
		if m.srcD == nil {
			m.violate("snapshot without a daemon")
			return
		}
		snap := m.srcD.clone()
		m.snapshots[e.Attempt] = snap
		var bytes []byte
		if !m.cfg.stateless {
			for _, id := range snap.applied {
				bytes = binary.LittleEndian.AppendUint64(bytes, id)
			}
		}
		var env []byte
		if e.Seal && !m.cfg.noEnvelope {
			env = []byte("sealed")
		}
		out, err := m.src.Handle(SnapshotTaken{Attempt: e.Attempt, Snapshot: bytes, SnapshotSeq: uint64(e.Attempt) * 10,
			InputSeq: snap.inputSeq, Envelope: env}, m.now)
		m.check(err)
		m.apply(RoleSource, out)
	case FlipRoute:
		m.srcRoute = e.To
	case ForwardEvent:
		m.book.back(m, RoleSource, "forward", e.Token, e.Event)
		m.events = append(m.events, delivery{to: e.To, ev: EventArrived{Sender: e.Event.Sender, SenderSeq: e.Event.SenderSeq, Payload: e.Event.Payload}})
	case ResumeLocal:
		m.srcFrozen, m.srcRoute = false, ""
		if len(e.Tokens) != len(e.Events) {
			m.violate("ResumeLocal with %d events and %d tokens", len(e.Events), len(e.Tokens))
		}
		for i, ev := range e.Events {
			if i < len(e.Tokens) {
				m.book.back(m, RoleSource, "resume", e.Tokens[i], ev)
			}
			m.applyTo(m.srcD, "source(resume)", binary.LittleEndian.Uint64(ev.Payload), 0)
		}
	case Release:
		m.srcD = nil
	case AllowModuleFetch, Unsubscribe, WipeKey, Resubscribe:
	case Admit:
		if e.Attempt != m.tgt.attempt {
			m.violate("Admit for attempt %d, target at %d", e.Attempt, m.tgt.attempt)
		}
		out, err := m.tgt.Handle(Admission{Attempt: e.Attempt, Ready: e.Attempt > m.cfg.notReadyAttempts,
			HaveModule: m.cfg.haveModule, RegisteredIdentity: !m.cfg.noRegistered}, m.now)
		m.check(err)
		m.apply(RoleTarget, out)
	case FetchModule:
		out, err := m.tgt.Handle(ModuleFetched{Attempt: e.Attempt, Digest: e.Digest}, m.now)
		m.check(err)
		m.apply(RoleTarget, out)
	case RestoreSnapshot:
		snap := m.snapshots[e.Attempt]
		if !m.cfg.stateless && len(e.Snapshot) != 8*len(snap.applied) {
			m.violate("restored %d bytes, snapshot had %d events", len(e.Snapshot), len(snap.applied))
		}
		m.tgtD = snap.clone()
		out, err := m.tgt.Handle(Restored{Attempt: e.Attempt, InputSeq: snap.inputSeq}, m.now)
		m.check(err)
		m.apply(RoleTarget, out)
	case ApplyEvent:
		if e.Token != 0 {
			m.book.back(m, RoleTarget, "apply", e.Token, e.Event)
		} else {
			m.book.replay(m, e.Event)
		}
		m.applyTo(m.tgtD, "target", binary.LittleEndian.Uint64(e.Event.Payload), e.Event.Seq)
	case GoLive:
		m.tgtLive = true
	case Discard:
		m.tgtD = nil
		m.book.discard()
	default:
		m.violate("unknown effect %T", e)
	}
}

// deliver hands packet i to every live machine on its node that takes it.
func (m *sim) deliver(i int) {
	p := m.net[i]
	m.net = slices.Delete(m.net, i, i+1)
	if !m.alive(p.to) || !m.alive(p.from) {
		return
	}
	msg, err := wire.Decode(p.frame)
	if err != nil {
		m.violate("undecodable frame: %v", err)
		return
	}
	for _, r := range []Role{RoleOrchestrator, RoleSource, RoleTarget} {
		if m.nodeOf(r) != p.to || !r.Accepts(msg.Kind()) {
			continue
		}
		var out Output
		switch r {
		case RoleOrchestrator:
			out, err = m.orch.Step(p.from, msg, m.now)
		case RoleSource:
			out, err = m.src.Step(p.from, msg, m.now)
		case RoleTarget:
			out, err = m.tgt.Step(p.from, msg, m.now)
		}
		m.check(err)
		m.apply(r, out)
	}
}

func (m *sim) deliverEvent(i int) {
	d := m.events[i]
	m.events = slices.Delete(m.events, i, i+1)
	m.arrive(d.to, d.ev)
}

func (m *sim) tick(d time.Duration) {
	m.now = m.now.Add(d)
	if m.alive(m.o) {
		m.apply(RoleOrchestrator, m.orch.Tick(m.now))
	}
	m.apply(RoleSource, m.src.Tick(m.now))
	if m.alive(m.t) {
		m.apply(RoleTarget, m.tgt.Tick(m.now))
	}
}

func (m *sim) crashTarget() {
	if m.tgtCrashed {
		return
	}
	m.tgtCrashed = true
	m.crashLive = m.tgtLive
	m.tgtLive = false
}

func (m *sim) peerDown() {
	if m.tgtCrashed {
		out, err := m.src.Handle(PeerDown{Node: m.t}, m.now)
		m.check(err)
		m.apply(RoleSource, out)
	}
}

// settled: every surviving machine has reached its outcome and nothing is
// in flight.
func (m *sim) settled() bool {
	orchDone, _ := m.orch.Result()
	srcDone, _ := m.src.Result()
	tgtDone, _ := m.tgt.Result()
	return (orchDone || !m.alive(m.o)) && (srcDone || !m.src.started) && (tgtDone || m.tgtCrashed || !m.tgt.started) &&
		len(m.net) == 0 && len(m.events) == 0
}

// drain heals the network and runs to quiescence.
func (m *sim) drain() {
	m.peerDown() // a perfect failure detector eventually reports the crash
	for range 400 {
		for len(m.net) > 0 || len(m.events) > 0 {
			if len(m.net) > 0 {
				m.deliver(0)
			} else {
				m.deliverEvent(0)
			}
		}
		if m.settled() {
			return
		}
		m.tick(time.Second)
	}
	m.violate("did not settle")
}

func (m *sim) activeOwners() int {
	n := 0
	if m.srcD != nil && !m.srcFrozen && m.srcRoute == "" {
		n++
	}
	if m.tgtLive && !m.tgtCrashed {
		n++
	}
	return n
}

// finalCheck states the end-to-end invariants.
func (m *sim) finalCheck() {
	if m.activeOwners() > 1 {
		m.violate("two active owners at the end")
	}
	want := slices.Clone(m.sent)
	slices.Sort(want)
	same := func(d *daemon) bool {
		got := slices.Clone(d.applied)
		slices.Sort(got)
		return slices.Equal(got, want) && d.inputSeq == uint64(len(want))
	}
	orchDone, orchErr := m.orch.Result()
	switch {
	case m.crashLive:
		// The owner died after the handover; its events died with it.
	case m.tgtLive:
		if !same(m.tgtD) {
			m.violate("completed, but target has %d events (seq %d) of %d sent", len(m.tgtD.applied), m.tgtD.inputSeq, len(want))
		}
		if m.srcD != nil {
			m.violate("completed, but the source did not release the daemon")
		}
		if m.alive(m.o) && orchDone && orchErr != nil && !errors.Is(orchErr, &Failure{Reason: Timeout}) {
			m.violate("target live but orchestrator reports %v", orchErr)
		}
	case m.srcD != nil && !m.srcFrozen:
		if !same(m.srcD) {
			m.violate("aborted, but source has %d events of %d sent", len(m.srcD.applied), len(want))
		}
		if m.alive(m.o) && orchDone && orchErr == nil {
			m.violate("source kept the daemon but orchestrator reports success")
		}
	default:
		m.violate("no owner at the end (source frozen=%v present=%v, target live=%v crashed=%v)", m.srcFrozen, m.srcD != nil, m.tgtLive, m.tgtCrashed)
	}
	m.book.finalCheck(m)
	for r, n := range m.doneCount {
		if r == RoleOrchestrator && n != 1 {
			m.violate("orchestrator reported Done %d times", n)
		}
	}
}

func (m *sim) report() string {
	return strings.Join(m.violations, "\n")
}
