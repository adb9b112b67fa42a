package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// A randomized model of pre-copy: the source and target machines, an I/O
// layer for each, a toy daemon whose memory is a few numbered pages, and
// the lossy, duplicating, reordering network of sim_test.go (its packet
// type, every message through a codec). Either side crashes; a crashed
// source restarts as a new migration. Stage operations run
// asynchronously and may fail; the target's budget may refuse a transfer.
//
// Properties:
//   - every acknowledgement of round r is sent with the stage equal to
//     what the source took for round r (base plus rounds, in order), and a
//     round is only ever written onto the stage of round r-1: a stale or
//     duplicated transfer never changes the stage;
//   - a pre-copy that ends Staged at round R ends with the target's stage
//     at R, so the final delta (computed against R) applies onto the base
//     it was computed against and yields the daemon's memory; one that
//     ends otherwise is followed by a full snapshot and the stage is
//     dropped;
//   - no DiscardStage while a stage operation runs, at most one operation
//     per migration, and at the end nothing is staged, reserved or in
//     flight once the TTL passed.

type pcMem map[uint32]uint64 // page → value; an absent page is zero

func pcEncode(m pcMem) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(m)))
	for _, p := range slices.Sorted(maps.Keys(m)) {
		b = binary.LittleEndian.AppendUint32(b, p)
		b = binary.LittleEndian.AppendUint64(b, m[p])
	}
	return b
}

// pcDelta: the pages of now that differ from base, then base's pages that
// are zero in now.
func pcDelta(base, now pcMem) ([]byte, int) {
	changed := pcMem{}
	for p, v := range now {
		if base[p] != v {
			changed[p] = v
		}
	}
	b := pcEncode(changed)
	var removed []uint32
	for _, p := range slices.Sorted(maps.Keys(base)) {
		if _, ok := now[p]; !ok {
			removed = append(removed, p)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(removed)))
	for _, p := range removed {
		b = binary.LittleEndian.AppendUint32(b, p)
	}
	return b, len(changed)
}

func pcDecode(b []byte) (pcMem, []byte, error) {
	if len(b) < 4 {
		return nil, nil, errors.New("short")
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if len(b) < 12*n {
		return nil, nil, errors.New("short pages")
	}
	m := pcMem{}
	for range n {
		m[binary.LittleEndian.Uint32(b)] = binary.LittleEndian.Uint64(b[4:])
		b = b[12:]
	}
	return m, b, nil
}

func pcApply(base pcMem, delta []byte) (pcMem, error) {
	changed, rest, err := pcDecode(delta)
	if err != nil || len(rest) < 4 {
		return nil, errors.New("bad delta")
	}
	out := maps.Clone(base)
	maps.Copy(out, changed)
	n := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if len(rest) != 4*n {
		return nil, errors.New("bad removed list")
	}
	for range n {
		delete(out, binary.LittleEndian.Uint32(rest))
		rest = rest[4:]
	}
	return out, nil
}

// Frames: 'c' round u32 wire-encoded chunk | 'a' id u64 round u32 error.
func pcChunkFrame(c PrecopyChunk) ([]byte, error) {
	b, err := wire.Encode(c.Chunk)
	if err != nil {
		return nil, err
	}
	return append(binary.LittleEndian.AppendUint32([]byte{'c'}, c.Round), b...), nil
}

func pcAckFrame(a PrecopyAck) []byte {
	b := binary.LittleEndian.AppendUint64([]byte{'a'}, a.ID)
	b = binary.LittleEndian.AppendUint32(b, a.Round)
	return append(b, a.Err...)
}

type pcSource struct {
	id        uint64
	m         *PrecopySource
	committed pcMem
	taken     map[uint32]pcMem // what each round's transfer carried (the whole memory then)
	res       *PrecopyResult
	crashed   bool
	restored  bool
	epoch     int // the target's restarts when it started
}

type pcStage struct {
	m        *PrecopyTarget
	from     NodeID
	content  pcMem // nil: nothing staged
	reserved bool
}

type pcOp struct {
	id    uint64
	st    *pcStage
	round uint32
	data  []byte
}

type pcSim struct {
	rng        *rand.Rand
	now        time.Time
	cfg        PrecopySourceConfig
	ttl        time.Duration
	mem        pcMem
	pages      uint32
	srcs       []*pcSource // the last one is the live attempt unless crashed
	nextID     uint64
	net        []packet
	tgt        map[uint64]*pcStage
	ops        []pcOp
	tgtEpoch   int             // target restarts
	expired    map[uint64]bool // pre-copies the target let expire
	refuseP    float64
	failP      float64
	violations []string
	stats      map[string]int
}

func (s *pcSim) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func (s *pcSim) checkErr(err error) {
	if err == nil {
		return
	}
	for _, typed := range []error{ErrUnexpectedSender, ErrUnknownMigration, ErrStaleAttempt, ErrFinished,
		ErrWrongPhase, ErrChunk, ErrPrecopy} {
		if errors.Is(err, typed) {
			return
		}
	}
	s.violate("untyped error: %v", err)
}

func (s *pcSim) startSource() {
	s.nextID++
	id := s.nextID<<8 | 1
	cfg := s.cfg
	cfg.ID = id
	m, out, err := NewPrecopySource(cfg, s.now)
	if err != nil {
		panic(err)
	}
	src := &pcSource{id: id, m: m, taken: map[uint32]pcMem{}, epoch: s.tgtEpoch}
	s.srcs = append(s.srcs, src)
	s.applySource(src, out)
}

func (s *pcSim) live() *pcSource {
	if len(s.srcs) == 0 {
		return nil
	}
	if src := s.srcs[len(s.srcs)-1]; !src.crashed {
		return src
	}
	return nil
}

func (s *pcSim) source(id uint64) *pcSource {
	for _, src := range s.srcs {
		if src.id == id {
			return src
		}
	}
	return nil
}

func (s *pcSim) send(from, to NodeID, frame []byte) {
	s.net = append(s.net, packet{from: from, to: to, frame: frame})
}

func (s *pcSim) applySource(src *pcSource, out PrecopyOutput) {
	for len(out.Chunks)+len(out.Effects) > 0 {
		for _, c := range out.Chunks {
			f, err := pcChunkFrame(c)
			if err != nil {
				s.violate("unencodable chunk: %v", err)
				continue
			}
			s.send("S", "T", f)
		}
		effects := out.Effects
		out = PrecopyOutput{}
		for _, e := range effects {
			var in PrecopyInput
			switch e := e.(type) {
			case TakeBase:
				if s.rng.Float64() < s.failP/4 {
					in = TakeFailed{Round: 0, Err: errors.New("snapshot failed")}
					break
				}
				src.taken[0] = maps.Clone(s.mem)
				in = BaseTaken{Data: pcEncode(s.mem), Seq: s.rng.Uint64(), PageBytes: int64(len(s.mem))}
			case TakeRound:
				if src.committed == nil {
					s.violate("round %d taken with nothing committed", e.Round)
					return
				}
				if s.rng.Float64() < s.failP/4 {
					in = TakeFailed{Round: e.Round, Err: errors.New("delta failed")}
					break
				}
				data, dirty := pcDelta(src.committed, s.mem)
				src.taken[e.Round] = maps.Clone(s.mem)
				if !src.m.WouldSend(int64(dirty)) {
					data = nil // as the I/O layer does: not encoded
				}
				in = RoundTaken{Round: e.Round, Data: data, Seq: s.rng.Uint64(), DirtyBytes: int64(dirty)}
			case CommitRound:
				t, ok := src.taken[e.Round]
				if !ok {
					s.violate("commit of round %d never taken", e.Round)
					continue
				}
				src.committed = t
				s.stats["commit"]++
				if e.Round > 0 {
					s.stats["round"]++
				}
			case PrecopyFinished:
				if src.res != nil {
					s.violate("pre-copy %x finished twice", src.id)
				}
				r := e.Result
				src.res = &r
				if r.Staged {
					if _, ok := src.taken[r.Round]; !ok || !maps.Equal(src.taken[r.Round], src.committed) {
						s.violate("finished staged at round %d, which is not the committed one", r.Round)
					}
					if r.Rounds > s.cfg.Rounds || r.Round != uint32(r.Rounds) {
						s.violate("finished at round %d after %d rounds (bound %d)", r.Round, r.Rounds, s.cfg.Rounds)
					}
				}
			default:
				s.violate("unknown source effect %T", e)
			}
			if in != nil {
				o, err := src.m.Handle(in, s.now)
				if err != nil {
					s.violate("source refused its own result: %v", err)
				}
				out.Chunks = append(out.Chunks, o.Chunks...)
				out.Effects = append(out.Effects, o.Effects...)
			}
		}
	}
}

func (s *pcSim) applyTarget(id uint64, st *pcStage, out PrecopyOutput) {
	for _, a := range out.Acks {
		if a.Err == "" {
			s.stats["ack"]++
			src := s.source(a.ID)
			switch {
			case src == nil:
				s.violate("ack of unknown pre-copy %x", a.ID)
			case st.content == nil || !maps.Equal(st.content, src.taken[a.Round]):
				s.violate("ack of round %d with a stage %v, the source took %v", a.Round, st.content, src.taken[a.Round])
			}
		}
		s.send("T", st.from, pcAckFrame(a))
	}
	for _, e := range out.Effects {
		busy := slices.ContainsFunc(s.ops, func(o pcOp) bool { return o.st == st })
		switch e := e.(type) {
		case StageBase:
			if busy {
				s.violate("second stage operation on %x", id)
			}
			s.ops = append(s.ops, pcOp{id: id, st: st, round: 0, data: e.Data})
		case AdvanceStage:
			if busy {
				s.violate("second stage operation on %x", id)
			}
			s.ops = append(s.ops, pcOp{id: id, st: st, round: e.Round, data: e.Data})
		case DiscardStage:
			if busy {
				s.violate("discard of %x while its stage operation runs", id)
			}
			st.content, st.reserved = nil, false
			s.stats["discard"]++
		default:
			s.violate("unknown target effect %T", e)
		}
	}
	if st.m.Done() {
		if st.content != nil || st.reserved {
			s.violate("finished target machine %x still holds a stage (%v) or a reservation (%v)", id, st.content != nil, st.reserved)
		}
		if s.tgt[id] == st {
			delete(s.tgt, id)
		}
	}
}

func (s *pcSim) receiveChunk(from NodeID, c PrecopyChunk) {
	id := c.Chunk.Header.ID
	st := s.tgt[id]
	if st == nil {
		m, err := NewPrecopyTarget(PrecopyTargetConfig{ID: id, Source: from, TTL: s.ttl, MaxSnapshot: 1 << 20}, s.now)
		if err != nil {
			panic(err)
		}
		st = &pcStage{m: m, from: from}
		s.tgt[id] = st
	}
	if _, need := st.m.Reservation(c); need {
		if s.rng.Float64() < s.refuseP {
			s.stats["refused"]++
			s.applyTarget(id, st, st.m.Refuse(c, fmt.Errorf("%w: busy", ErrPrecopy), s.now))
			return
		}
		st.reserved = true
	}
	out, err := st.m.Step(from, c, s.now)
	s.checkErr(err)
	s.applyTarget(id, st, out)
}

func (s *pcSim) finishOp(i int) {
	op := s.ops[i]
	s.ops = slices.Delete(s.ops, i, i+1)
	st := op.st
	var err error
	if s.rng.Float64() < s.failP {
		err = errors.New("stage failed")
	} else if op.round == 0 {
		var rest []byte
		st.content, rest, err = pcDecode(op.data)
		if err == nil && len(rest) != 0 {
			err = errors.New("trailing bytes")
		}
	} else {
		src := s.source(op.id)
		switch {
		case st.content == nil:
			s.violate("round %d of %x written with nothing staged", op.round, op.id)
		case src != nil && !maps.Equal(st.content, src.taken[op.round-1]):
			s.violate("round %d of %x written onto a stage that is not round %d", op.round, op.id, op.round-1)
		}
		st.content, err = pcApply(st.content, op.data)
	}
	if err != nil {
		st.content = nil // the I/O layer discards a stage whose operation failed
	}
	out, herr := st.m.Handle(StageDone{Round: op.round, Size: uint64(len(st.content)), Err: err}, s.now)
	if herr != nil {
		s.violate("stage result refused: %v", herr)
	}
	s.applyTarget(op.id, st, out)
}

func (s *pcSim) deliver(i int, keep bool) {
	p := s.net[i]
	if !keep {
		s.net = slices.Delete(s.net, i, i+1)
	}
	switch p.frame[0] {
	case 'c':
		msg, err := wire.Decode(p.frame[5:])
		if err != nil {
			s.violate("undecodable chunk: %v", err)
			return
		}
		s.receiveChunk(p.from, PrecopyChunk{Round: binary.LittleEndian.Uint32(p.frame[1:]), Chunk: msg.(wire.SnapshotChunk)})
	case 'a':
		a := PrecopyAck{ID: binary.LittleEndian.Uint64(p.frame[1:]), Round: binary.LittleEndian.Uint32(p.frame[9:]), Err: string(p.frame[13:])}
		src := s.source(a.ID)
		if src == nil || src.crashed {
			return
		}
		out, err := src.m.Step(p.from, a, s.now)
		s.checkErr(err)
		s.applySource(src, out)
	}
}

func (s *pcSim) tick(d time.Duration) {
	s.now = s.now.Add(d)
	if src := s.live(); src != nil {
		s.applySource(src, src.m.Tick(s.now))
	}
	for _, id := range slices.Sorted(maps.Keys(s.tgt)) {
		if st := s.tgt[id]; st != nil {
			s.applyTarget(id, st, st.m.Tick(s.now))
			if st.m.Done() {
				s.expired[id] = true
				s.stats["expired"]++
			}
		}
	}
}

func (s *pcSim) dirty() {
	for range 1 + s.rng.IntN(3) {
		p := s.rng.Uint32N(s.pages)
		if s.rng.IntN(5) == 0 {
			delete(s.mem, p)
		} else {
			s.mem[p] = s.rng.Uint64()
		}
	}
}

// freeze is the protocol's snapshot transfer and restore: a delta against
// the committed round when the pre-copy ended staged, else a full snapshot.
func (s *pcSim) freeze(src *pcSource) {
	src.restored = true
	st := s.tgt[src.id]
	if !src.res.Staged {
		s.stats["full"]++
		if st != nil {
			s.applyTarget(src.id, st, st.m.Drop(nil, s.now))
		}
		return
	}
	delta, _ := pcDelta(src.committed, s.mem)
	var ok bool
	if st != nil {
		var out PrecopyOutput
		ok, out = st.m.Take(src.res.Round, s.now)
		if ok {
			if !maps.Equal(st.content, src.committed) {
				s.violate("taken stage %v, the delta was computed against %v", st.content, src.committed)
			}
			got, err := pcApply(st.content, delta)
			if err != nil || !maps.Equal(got, s.mem) {
				s.violate("delta restore gave %v, the daemon holds %v (%v)", got, s.mem, err)
			}
			st.content, st.reserved = nil, false // the restore owns it now
			s.stats["delta"]++
		}
		s.applyTarget(src.id, st, out)
	}
	if !ok {
		// Only a restarted target (or an expired stage) lost what it
		// acknowledged; the restore then fails rather than corrupts.
		if src.epoch == s.tgtEpoch && !s.expired[src.id] {
			s.violate("pre-copy %x ended staged at round %d but the target has no such stage", src.id, src.res.Round)
		}
		s.stats["lost"]++
	}
}

func (s *pcSim) crashTarget() {
	s.tgt = map[uint64]*pcStage{}
	s.ops = nil
	s.tgtEpoch++
	s.stats["target crash"]++
}

func (s *pcSim) step() {
	switch k := s.rng.IntN(100); {
	case k < 45 && len(s.net) > 0:
		i := s.rng.IntN(len(s.net))
		switch r := s.rng.IntN(20); {
		case r == 0:
			s.net = slices.Delete(s.net, i, i+1) // lost
		case r == 1:
			s.deliver(i, true) // duplicated
		default:
			s.deliver(i, false)
		}
	case k < 60 && len(s.ops) > 0:
		s.finishOp(s.rng.IntN(len(s.ops)))
	case k < 72:
		s.tick(time.Duration(10+s.rng.IntN(600)) * time.Millisecond)
	case k < 85:
		s.dirty()
	case k < 93:
		for _, src := range s.srcs {
			if src.res != nil && !src.restored && !src.crashed {
				s.freeze(src)
			}
		}
	case k == 93 && s.rng.IntN(4) == 0:
		if src := s.live(); src != nil && src.res == nil {
			src.crashed = true
			s.stats["source crash"]++
		}
	case k == 94 && s.rng.IntN(8) == 0:
		s.crashTarget()
	case k == 95:
		if s.live() == nil && len(s.srcs) < 3 {
			s.startSource()
		}
	}
}

func (s *pcSim) settle() {
	for range 200 {
		for len(s.net) > 0 || len(s.ops) > 0 {
			if len(s.net) > 0 {
				s.deliver(0, false)
			} else {
				s.finishOp(0)
			}
		}
		src := s.live()
		if src != nil && src.res != nil && !src.restored {
			s.freeze(src)
		}
		if (src == nil || src.restored) && len(s.net) == 0 && len(s.ops) == 0 {
			break
		}
		s.tick(time.Second)
	}
	if src := s.live(); src != nil && !src.restored {
		s.violate("the live pre-copy did not end")
	}
	// Whatever a crashed source or a duplicate left staged expires.
	s.tick(s.ttl + time.Second)
	if len(s.tgt) != 0 || len(s.ops) != 0 {
		s.violate("after the TTL the target holds %d pre-copies and %d operations", len(s.tgt), len(s.ops))
	}
}

func runPrecopySim(seed uint64) *pcSim {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &pcSim{rng: rng, now: time.Unix(1000, 0), ttl: 60 * time.Second, mem: pcMem{},
		pages: 4 + rng.Uint32N(12), tgt: map[uint64]*pcStage{}, expired: map[uint64]bool{}, stats: map[string]int{}}
	s.cfg = PrecopySourceConfig{Target: "T", Rounds: rng.IntN(5), DirtyBytes: int64(rng.IntN(3)),
		ChunkSize: 16 + rng.IntN(48), AckTimeout: 5 * time.Second}
	if rng.IntN(3) > 0 {
		s.cfg.Retransmit = 300 * time.Millisecond
	}
	s.refuseP = []float64{0, 0, 0.05, 0.3}[rng.IntN(4)]
	s.failP = []float64{0, 0, 0.05, 0.2}[rng.IntN(4)]
	for range s.pages {
		s.dirty()
	}
	s.startSource()
	for range 150 + rng.IntN(250) {
		s.step()
	}
	s.settle()
	return s
}

// TestPrecopyModel runs the randomized pre-copy model.
func TestPrecopyModel(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	total := map[string]int{}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		s := runPrecopySim(seed)
		if len(s.violations) > 0 {
			t.Fatalf("seed %d:\n%s", seed, strings.Join(s.violations, "\n"))
		}
		for k, v := range s.stats {
			total[k] += v
		}
	}
	// The runs must have exercised what the properties are about.
	for _, k := range []string{"commit", "round", "ack", "discard", "expired", "refused", "delta", "full", "source crash", "target crash"} {
		if total[k] == 0 {
			t.Fatalf("no %q in %d runs: %v", k, n, total)
		}
	}
	t.Logf("%d runs: %v", n, total)
}
