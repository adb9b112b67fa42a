package protocol

import (
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

func pcTestChunk(id uint64, round uint32, data []byte) PrecopyChunk {
	return PrecopyChunk{Round: round, Chunk: wire.SnapshotChunk{Header: wire.Header{ID: id, Attempt: max(round, 1)}, Origin: id,
		SnapshotSeq: uint64(round) + 1, Index: 0, Count: 1, TotalBytes: uint64(len(data)), Data: data}}
}

func pcHas[T PrecopyEffect](out PrecopyOutput) bool {
	for _, e := range out.Effects {
		if _, ok := e.(T); ok {
			return true
		}
	}
	return false
}

// stagedTarget is a target machine that staged the base and round 1.
func stagedTarget(t *testing.T, now time.Time) *PrecopyTarget {
	t.Helper()
	m, err := NewPrecopyTarget(PrecopyTargetConfig{ID: 5, Source: "S", TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	for r := uint32(0); r <= 1; r++ {
		out, err := m.Step("S", pcTestChunk(5, r, []byte{byte(r)}), now)
		if err != nil || len(out.Effects) != 1 {
			t.Fatalf("round %d: %+v %v", r, out, err)
		}
		out, err = m.Handle(StageDone{Round: r, Size: 10}, now)
		if err != nil || len(out.Acks) != 1 || out.Acks[0] != (PrecopyAck{ID: 5, Round: r}) {
			t.Fatalf("round %d staged: %+v %v", r, out, err)
		}
	}
	return m
}

// A transfer the source could not have sent yet (past the next round) is
// refused and the stage given up; a duplicate of a staged round changes
// nothing and is acknowledged again; another node's chunk changes nothing.
func TestPrecopyTargetOrder(t *testing.T) {
	now := time.Unix(1, 0)
	m := stagedTarget(t, now)
	out, err := m.Step("S", pcTestChunk(5, 1, []byte{1}), now)
	if err != nil || len(out.Effects) != 0 || len(out.Acks) != 1 || out.Acks[0].Err != "" {
		t.Fatalf("duplicate of round 1: %+v %v", out, err)
	}
	if out, err := m.Step("S", pcTestChunk(5, 0, []byte{0}), now); err != nil || !out.Empty() {
		t.Fatalf("stale base: %+v %v", out, err)
	}
	var se *SenderError
	if out, err := m.Step("X", pcTestChunk(5, 2, []byte{2}), now); !errors.As(err, &se) || !out.Empty() {
		t.Fatalf("chunk from another node: %+v %v", out, err)
	}
	if r, ok := m.Staged(); !ok || r != 1 {
		t.Fatalf("stage at %d (%v) after duplicates, want round 1", r, ok)
	}
	out, err = m.Step("S", pcTestChunk(5, 3, []byte{3}), now)
	if !errors.Is(err, ErrPrecopyOrder) || !pcHas[DiscardStage](out) || len(out.Acks) != 1 || out.Acks[0].Err == "" || !m.Done() {
		t.Fatalf("round 3 after round 1: %+v %v", out, err)
	}
}

func TestPrecopyTargetRoundWithoutBase(t *testing.T) {
	m, _ := NewPrecopyTarget(PrecopyTargetConfig{ID: 5, Source: "S", TTL: time.Minute}, time.Unix(1, 0))
	out, err := m.Step("S", pcTestChunk(5, 1, []byte{1}), time.Unix(1, 0))
	if !errors.Is(err, ErrNoStagedBase) || !errors.Is(err, ErrPrecopy) || len(out.Acks) != 1 || out.Acks[0].Err == "" || !m.Done() {
		t.Fatalf("round without base: %+v %v", out, err)
	}
}

// Ending while a stage operation runs defers the discard until it is
// reported back, so the I/O layer never drops what a goroutine writes.
func TestPrecopyTargetDropWhileStaging(t *testing.T) {
	now := time.Unix(1, 0)
	m := stagedTarget(t, now)
	if out, err := m.Step("S", pcTestChunk(5, 2, []byte{2}), now); err != nil || !pcHas[AdvanceStage](out) {
		t.Fatalf("round 2: %+v %v", out, err)
	}
	if ok, out := m.Take(1, now); ok || pcHas[DiscardStage](out) {
		t.Fatalf("taken while round 2 is written: %v %+v", ok, out)
	}
	if m.Done() {
		t.Fatal("done before the stage operation came back")
	}
	out, err := m.Handle(StageDone{Round: 2, Size: 10}, now)
	if err != nil || !pcHas[DiscardStage](out) || len(out.Acks) != 0 || !m.Done() {
		t.Fatalf("stage operation back after the end: %+v %v", out, err)
	}
}

func TestPrecopyTargetExpires(t *testing.T) {
	now := time.Unix(1, 0)
	m := stagedTarget(t, now)
	if out := m.Tick(now.Add(time.Minute)); !out.Empty() {
		t.Fatalf("expired at the TTL: %+v", out)
	}
	if out := m.Tick(now.Add(time.Minute + time.Millisecond)); !pcHas[DiscardStage](out) || !m.Done() {
		t.Fatalf("not expired past the TTL: %+v", out)
	}
}

// The source answers only the acknowledgement of the transfer in flight,
// from its target; a timeout leaves nothing relied on.
func TestPrecopySourceAcks(t *testing.T) {
	now := time.Unix(1, 0)
	s, out, err := NewPrecopySource(PrecopySourceConfig{ID: 5, Target: "T", Rounds: 2, DirtyBytes: 1, AckTimeout: time.Second}, now)
	if err != nil || !pcHas[TakeBase](out) {
		t.Fatalf("start: %+v %v", out, err)
	}
	if out, err = s.Handle(BaseTaken{Data: []byte("base"), Seq: 1, PageBytes: 100}, now); err != nil || len(out.Chunks) != 1 {
		t.Fatalf("base: %+v %v", out, err)
	}
	var se *SenderError
	if _, err := s.Step("X", PrecopyAck{ID: 5}, now); !errors.As(err, &se) {
		t.Fatalf("ack from another node: %v", err)
	}
	if _, err := s.Step("T", PrecopyAck{ID: 5, Round: 1}, now); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("ack of a round not sent: %v", err)
	}
	if out, err = s.Step("T", PrecopyAck{ID: 5}, now); err != nil || !pcHas[CommitRound](out) || !pcHas[TakeRound](out) {
		t.Fatalf("base acknowledged: %+v %v", out, err)
	}
	if !s.WouldSend(50) || s.WouldSend(1) || s.WouldSend(100) {
		t.Fatal("WouldSend: want a round that shrank and is over the threshold")
	}
	if out, err = s.Handle(RoundTaken{Round: 1, Data: []byte("r1"), Seq: 2, DirtyBytes: 50}, now); err != nil || len(out.Chunks) != 1 {
		t.Fatalf("round 1: %+v %v", out, err)
	}
	if out = s.Tick(now.Add(time.Second)); !pcHas[PrecopyFinished](out) {
		t.Fatalf("no timeout: %+v", out)
	}
	if done, res := s.Done(); !done || res.Staged || !errors.Is(res.Err, ErrPrecopyTimeout) || res.Rounds != 0 {
		t.Fatalf("after a timeout: %v %+v", done, res)
	}
}

// An announced size near 2^64 cannot wrap the reservation's sum, and the
// transfer is refused.
func TestPrecopyTargetHugeTransfer(t *testing.T) {
	now := time.Unix(1, 0)
	m := stagedTarget(t, now)
	c := pcTestChunk(5, 2, []byte{2})
	c.Chunk.TotalBytes = ^uint64(0) - 5
	n, need := m.Reservation(c)
	if !need || n < 10 || n > 10+DefaultLimits().MaxSnapshotBytes+1 {
		t.Fatalf("reservation %d (%v)", n, need)
	}
	if out, err := m.Step("S", c, now); !errors.Is(err, ErrChunk) || !pcHas[DiscardStage](out) || !m.Done() {
		t.Fatalf("huge transfer: %+v %v", out, err)
	}
}
