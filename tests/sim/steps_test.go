package sim

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

type stepKind uint8

const (
	stDeliver   stepKind = iota // deliver one message (a random link: calls may overtake each other)
	stDrop                      // lose one message (a broken stream or connection)
	stDuplicate                 // deliver a migration frame twice
	stSend                      // a client sends an event
	stMigrate                   // start a migration
	stCancel                    // cancel a running migration
	stTick                      // time passes
	stJump                      // a lot of time passes at once
	stPartition                 // cut one node off
	stHeal                      // heal every partition
	stCrashDisk                 // a node crashes and restarts with its disk
	stCrashWipe                 // a node crashes and restarts without its disk
	stRestore                   // a held restore on a target finishes
	numStepKinds
)

var stepNames = [...]string{"deliver", "drop", "duplicate", "send", "migrate", "cancel", "tick", "jump", "partition", "heal", "crash+disk", "crash-disk", "restore"}

func (k stepKind) String() string { return stepNames[k] }

// weights of the step kinds in a generated history.
var stepWeights = [numStepKinds]int{
	stDeliver: 40, stDrop: 3, stDuplicate: 2, stSend: 18, stMigrate: 8, stCancel: 2,
	stTick: 14, stJump: 1, stPartition: 1, stHeal: 2, stCrashDisk: 1, stCrashWipe: 1, stRestore: 7,
}

// step is one generated action; its numbers pick among whatever exists
// when it runs (modulo), so a history stays meaningful when the shrinker
// drops steps from it.
type step struct {
	Kind    stepKind
	A, B, C uint32
}

func (st step) String() string { return fmt.Sprintf("%v(%d,%d,%d)", st.Kind, st.A, st.B, st.C) }

func genSteps(seed int64, n int) []step {
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0x51a))
	total := 0
	for _, w := range stepWeights {
		total += w
	}
	steps := make([]step, n)
	for i := range steps {
		x := rng.IntN(total)
		k := stepKind(0)
		for ; x >= stepWeights[k]; k++ {
			x -= stepWeights[k]
		}
		steps[i] = step{Kind: k, A: rng.Uint32(), B: rng.Uint32(), C: rng.Uint32()}
	}
	return steps
}

// exec runs one step and describes what it did.
func (s *sim) exec(st step) string {
	N := len(s.nodes)
	switch st.Kind {
	case stDeliver, stDrop, stDuplicate:
		s.mu.Lock()
		defer s.mu.Unlock()
		busy := s.net.busy()
		if len(busy) == 0 {
			return st.Kind.String() + ": nothing in flight"
		}
		l := busy[int(st.A)%len(busy)]
		q := s.net.links[l]
		i := 0
		if l.calls {
			// Calls ride separate streams: any of them may arrive first.
			i = int(st.B) % len(q)
		}
		m := s.net.take(l, i)
		kind := st.Kind
		if kind == stDuplicate && m.kind != kindFrame {
			kind = stDeliver
		}
		desc := fmt.Sprintf("%v n%d→n%d %s", kind, l.from, l.to, s.msgName(m))
		switch {
		case st.Kind == stDrop:
			s.dropLocked(m)
		case st.Kind == stDuplicate && m.kind == kindFrame:
			s.deliverMsg(m)
			s.deliverMsg(m)
		default:
			s.deliverMsg(m)
		}
		return desc
	case stSend:
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.clients[int(st.A)%len(s.clients)]
		return s.startOp(c, int(st.B)%len(s.daemons), int(st.C)%N)
	case stMigrate:
		return s.migrate(st)
	case stCancel:
		var open []int
		s.mu.Lock()
		for i := range s.daemons {
			if m := s.migs[i]; m != nil && !m.finished() && s.nodes[m.orch].inc == m.orchInc {
				open = append(open, i)
			}
		}
		s.mu.Unlock()
		if len(open) == 0 {
			return "cancel: no migration running"
		}
		di := open[int(st.A)%len(open)]
		err := s.migs[di].h.Cancel()
		return fmt.Sprintf("cancel d%d: %v", di, errText(err))
	case stTick:
		d := time.Duration(1+st.A%300) * time.Millisecond
		healed := s.autoHeal(d)
		time.Sleep(d)
		return fmt.Sprintf("tick %v%s", d, healed)
	case stJump:
		d := time.Duration(5+st.A%15) * time.Second
		if s.longOutages {
			d = time.Duration(5+st.A%40) * time.Second
		}
		healed := s.autoHeal(d)
		time.Sleep(d)
		return fmt.Sprintf("jump %v%s", d, healed)
	case stPartition:
		i := int(st.A) % N
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.net.cut) == 0 {
			s.cutAt = time.Now()
		}
		s.net.cut[i] = true
		// Connections across the cut break.
		for l, q := range s.net.links {
			var keep []*message
			for _, m := range q {
				if s.net.severed(m.from, m.to) {
					s.dropLocked(m)
					continue
				}
				keep = append(keep, m)
			}
			s.net.links[l] = keep
		}
		return fmt.Sprintf("partition n%d", i)
	case stHeal:
		s.mu.Lock()
		defer s.mu.Unlock()
		clear(s.net.cut)
		return "heal"
	case stCrashDisk, stCrashWipe:
		return s.crashStep(int(st.A)%N, st.Kind == stCrashDisk)
	case stRestore:
		s.mu.Lock()
		if len(s.gates) == 0 {
			s.mu.Unlock()
			return "restore: none held"
		}
		i := int(st.A) % len(s.gates)
		g := s.gates[i]
		s.gates = append(s.gates[:i:i], s.gates[i+1:]...)
		s.mu.Unlock()
		close(g.ch)
		return fmt.Sprintf("restore on n%d finishes", g.node)
	}
	return "?"
}

// maxOutage bounds how long a partition lasts unless -long-outages: the
// protocol needs an outage past the cutover to end within the migrators'
// linger (see README, "Open findings"); a partition and the jumps around
// it stay under the simulator's 60 s linger.
const maxOutage = 20 * time.Second

// maxSilence bounds, unless -long-outages, how long a message waits in the
// network (jumps deliver nothing): with a partition before it, an outage
// stays under the simulator's linger.
const maxSilence = 30 * time.Second

// autoHeal heals a partition that would outlast maxOutage once d passes,
// and delivers everything in flight if a message would wait longer than
// maxSilence.
func (s *sim) autoHeal(d time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.longOutages {
		return ""
	}
	note := ""
	if len(s.net.cut) > 0 && time.Since(s.cutAt)+d > maxOutage {
		clear(s.net.cut)
		note = " (partition healed first)"
	}
	if old := s.net.oldest(); !old.IsZero() && time.Since(old)+d > maxSilence {
		for _, l := range s.net.busy() {
			for len(s.net.links[l]) > 0 {
				s.deliverMsg(s.net.take(l, 0))
			}
		}
		note += " (network flushed first)"
	}
	return note
}

// involved: node i takes part in a migration the simulator started that has
// not ended, or its migrator still holds one.
func (s *sim) involved(i int) bool {
	s.mu.Lock()
	mig := s.nodes[i].mig
	for _, m := range s.migs {
		if !m.finished() && (m.from == i || m.to == i || m.orch == i) {
			s.mu.Unlock()
			return true
		}
	}
	s.mu.Unlock()
	return mig != nil && mig.Resources().Runs > 0
}

// remoteSource: node i is the source or target of an unfinished migration
// that another node orchestrates. Losing it past the cutover can leave that
// orchestrator waiting for good (README, "Open findings"), so the default
// run does not crash it.
func (s *sim) remoteSource(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.migs {
		if !m.finished() && (m.from == i || m.to == i) && m.orch != i && s.nodes[m.orch].inc == m.orchInc {
			return true
		}
	}
	return false
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// migrate moves a daemon that has one owner and no migration running to
// another node; the source orchestrates, or (C odd) a third node does.
func (s *sim) migrate(st step) string {
	di := int(st.A) % len(s.daemons)
	d := s.daemons[di]
	s.mu.Lock()
	m := s.migs[di]
	busy := m != nil && !m.finished() && s.nodes[m.orch].inc == m.orchInc
	s.mu.Unlock()
	if d.maybeLost || busy {
		return fmt.Sprintf("migrate d%d skipped", di)
	}
	at := s.copies(d.origin)
	if len(at) != 1 {
		return fmt.Sprintf("migrate d%d skipped: %d copies", di, len(at))
	}
	N := len(s.nodes)
	src := at[0]
	tgt := (src + 1 + int(st.B)%(N-1)) % N
	orch := src
	opts := driver.DefaultOptions()
	if st.C%2 == 1 && N > 2 {
		orch = (src + 1 + int(st.C/2)%(N-1)) % N
		dm, err := s.nodes[src].rt.Daemon(d.origin)
		if err != nil {
			return fmt.Sprintf("migrate d%d skipped: %v", di, err)
		}
		opts.KindDigest = string(dm.Kind().Digest)
	}
	s.mu.Lock()
	on := s.nodes[orch]
	mig, inc := on.mig, on.inc
	s.mu.Unlock()
	h, err := mig.StartMigrationWith(context.Background(), d.origin, nodeID(src), nodeID(tgt), opts)
	if err != nil {
		return fmt.Sprintf("migrate d%d n%d→n%d by n%d: %v", di, src, tgt, orch, err)
	}
	rec := &migRec{h: h, orch: orch, orchInc: inc, from: src, to: tgt}
	s.mu.Lock()
	s.migs[di] = rec
	s.mu.Unlock()
	go func() {
		err := h.Wait(s.stop)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stop.Err() == nil {
			s.note("migration d%d n%d→n%d: %s", di, src, tgt, errText(err))
		}
	}()
	return fmt.Sprintf("migrate d%d n%d→n%d by n%d", di, src, tgt, orch)
}

// crashStep crashes node i and restarts it at once. With its disk it
// comes back with the daemons it owned at the crash, every applied event
// included (the node acknowledges only journaled events, --durability
// sync); unless -crash-mid, such a crash is skipped while the node takes
// part in a migration, because the node's restart reconciliation with
// migration records is not simulated (with -crash-mid a daemon migrating
// to or from it counts as possibly lost). Without its disk it comes back
// empty and membership declares the old one gone (PeerDown).
func (s *sim) crashStep(i int, disk bool) string {
	n := s.nodes[i]
	if disk && !s.crashMid && s.involved(i) {
		return fmt.Sprintf("crash n%d disk=true skipped: a migration runs or lingers there", i)
	}
	if !disk && !s.crashMid && s.remoteSource(i) {
		return fmt.Sprintf("crash n%d disk=false skipped: source or target of a migration another node orchestrates", i)
	}
	type saved struct {
		di   int
		id   identity.Identity
		kind string
		snap *snapshot.Snapshot
	}
	var keep []saved
	var lost []int
	for _, d := range s.daemons {
		at := s.copies(d.origin)
		here := false
		for _, a := range at {
			here = here || a == i
		}
		if !here {
			continue
		}
		s.mu.Lock()
		m := s.migs[d.idx]
		moving := len(at) > 1 || (m != nil && !m.finished() && (m.from == i || m.to == i))
		s.mu.Unlock()
		if !disk || moving {
			lost = append(lost, d.idx)
			continue
		}
		dm, err := n.rt.Daemon(d.origin)
		if err != nil {
			continue
		}
		snap, err := dm.Snapshot(context.Background())
		if err != nil {
			lost = append(lost, d.idx)
			continue
		}
		var id identity.Identity
		if err := dm.WithSeed(func(seed []byte) (err error) { id, err = identity.FromSeed(seed); return err }); err != nil {
			lost = append(lost, d.idx)
			continue
		}
		keep = append(keep, saved{d.idx, id, string(dm.Kind().Digest), snap})
	}
	s.mu.Lock()
	routes, moved := n.routes, n.moved
	// Marked before the crash: its consequences (a source resuming an
	// older state on PeerDown) show up while it runs.
	for _, di := range lost {
		s.daemons[di].maybeLost = true
	}
	s.mu.Unlock()
	s.crash(i)
	if !disk {
		// Membership declares a node that lost its disk gone; one that
		// restarts at once with its disk it never does (it refutes).
		for _, o := range s.nodes {
			if o.idx != i && o.mig != nil {
				o.mig.PeerDown(nodeID(i))
			}
		}
	}
	if !disk {
		routes, moved = nil, nil
	}
	s.alignPhase(i)
	if err := s.startNode(i, routes, moved); err != nil {
		s.mu.Lock()
		s.violate("restart n%d: %v", i, err)
		s.mu.Unlock()
		return "crash: restart failed"
	}
	restored := 0
	for _, k := range keep {
		if _, err := n.rt.SpawnFromSnapshot(context.Background(), k.kind, k.id, k.snap, engine.SpawnOptions{}); err != nil {
			lost = append(lost, k.di)
			continue
		}
		restored++
	}
	s.mu.Lock()
	for _, di := range lost {
		s.daemons[di].maybeLost = true
	}
	n.gating = true
	s.mu.Unlock()
	return fmt.Sprintf("crash n%d disk=%v: restored %d, possibly lost %v", i, disk, restored, lost)
}
