package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// sendCmd is the sender fixture's event: send count messages of size bytes
// to target, then fail the event if fail is set.
func sendCmd(count uint32, fail bool, target uint64, size uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, count)
	f := byte(0)
	if fail {
		f = 1
	}
	b = append(b, f)
	b = binary.LittleEndian.AppendUint64(b, target)
	return binary.LittleEndian.AppendUint32(b, size)
}

type senderEnv struct {
	rt    *engine.Runtime
	mu    sync.Mutex
	woken map[uint64]int
}

func newSenderEnv(t *testing.T, j engine.InputJournal) *senderEnv {
	t.Helper()
	e := &senderEnv{woken: map[uint64]int{}}
	e.rt = newRuntime(t, engine.Config{Journal: j, OnSends: func(o uint64) {
		e.mu.Lock()
		e.woken[o]++
		e.mu.Unlock()
	}})
	if _, err := e.rt.RegisterModule(context.Background(), fixture(t, "sender.wasm"), "sender"); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// run delivers a sender command and returns the result codes it emitted.
func run(t *testing.T, d *engine.Daemon, seq uint64, cmd []byte) ([]byte, error) {
	t.Helper()
	outs, err := d.Deliver(context.Background(), engine.Event{Sender: 9, Seq: seq, Payload: cmd})
	if err != nil {
		return nil, err
	}
	if len(outs) != 1 {
		t.Fatalf("%d outputs, want 1", len(outs))
	}
	return outs[0].Payload, nil
}

func seqsOf(ss []engine.Send) []uint64 {
	out := make([]uint64, len(ss))
	for i, s := range ss {
		out[i] = s.Seq
	}
	return out
}

func wantSeqs(t *testing.T, d *engine.Daemon, want ...uint64) {
	t.Helper()
	got := seqsOf(d.PendingSends(0))
	if len(got) != len(want) {
		t.Fatalf("pending seqs %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("pending seqs %v, want %v", got, want)
		}
	}
}

func TestSendSeqsAndCommit(t *testing.T) {
	e := newSenderEnv(t, nil)
	d := spawn(t, e.rt, "sender", engine.SpawnOptions{})
	codes, err := run(t, d, 1, sendCmd(3, false, 0xfeed, 6))
	if err != nil || !bytes.Equal(codes, []byte{0, 0, 0}) {
		t.Fatalf("codes %v err %v, want three queued", codes, err)
	}
	wantSeqs(t, d, 1, 2, 3)
	if _, err := run(t, d, 2, sendCmd(2, false, 0xbeef, 4)); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, d, 1, 2, 3, 4, 5)
	p := d.PendingSends(0)
	if p[0].Target != 0xfeed || p[4].Target != 0xbeef || len(p[0].Payload) != 6 || binary.LittleEndian.Uint32(p[1].Payload) != 1 {
		t.Fatalf("pending %+v: wrong target or payload", p)
	}
	if got := seqsOf(d.PendingSends(2)); len(got) != 2 || got[0] != 1 {
		t.Fatalf("PendingSends(2) = %v, want the oldest two", got)
	}
	if got := d.SendTargets(); len(got) != 2 || got[0] != 0xfeed || got[1] != 0xbeef {
		t.Fatalf("SendTargets = %x, want [feed beef]", got)
	}
	if got := seqsOf(d.PendingSendsTo(0xbeef, 0)); len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Fatalf("PendingSendsTo(0xbeef) = %v, want [4 5]", got)
	}
	if got := seqsOf(d.PendingSendsTo(0xfeed, 1)); len(got) != 1 || got[0] != 1 {
		t.Fatalf("PendingSendsTo(0xfeed, 1) = %v, want [1]", got)
	}
	e.mu.Lock()
	woken := e.woken[d.Origin()]
	e.mu.Unlock()
	if woken != 2 {
		t.Fatalf("OnSends called %d times, want once per committing event (2)", woken)
	}
	// Acknowledged out of order, as deliveries to two targets are.
	if !d.SentDelivered(4) || !d.SentDelivered(1) || d.SentDelivered(1) {
		t.Fatalf("SentDelivered: want true, true, then false for a repeat")
	}
	wantSeqs(t, d, 2, 3, 5)
	if d.OutboxLen() != 3 || d.OutSeq() != 5 {
		t.Fatalf("OutboxLen %d OutSeq %d, want 3 and 5", d.OutboxLen(), d.OutSeq())
	}
}

func TestRolledBackEventSendsNothing(t *testing.T) {
	e := newSenderEnv(t, nil)
	d := spawn(t, e.rt, "sender", engine.SpawnOptions{})
	if _, err := run(t, d, 1, sendCmd(2, false, 1, 8)); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, d, 2, sendCmd(5, true, 1, 8))
	var ee *engine.EventError
	if !errors.As(err, &ee) || !ee.RolledBack {
		t.Fatalf("failing event: got %v, want a rolled-back EventError", err)
	}
	wantSeqs(t, d, 1, 2)
	e.mu.Lock()
	woken := e.woken[d.Origin()]
	e.mu.Unlock()
	if woken != 1 {
		t.Fatalf("OnSends called %d times, want 1: a rolled-back event must not wake the deliverer", woken)
	}
	// The rolled-back sends used no sequence numbers.
	if _, err := run(t, d, 3, sendCmd(1, false, 1, 8)); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, d, 1, 2, 3)
}

func TestSendBounds(t *testing.T) {
	e := newSenderEnv(t, nil)
	d := spawn(t, e.rt, "sender", engine.SpawnOptions{})
	codes, err := run(t, d, 1, sendCmd(1, false, 1, engine.MaxSendBytes+1))
	if err != nil || !bytes.Equal(codes, []byte{abi.SendTooLarge}) {
		t.Fatalf("oversized send: codes %v err %v, want [%d]", codes, err, abi.SendTooLarge)
	}
	codes, err = run(t, d, 2, sendCmd(engine.MaxOutboxEntries+2, false, 1, 4))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		want := byte(abi.SendQueued)
		if i >= engine.MaxOutboxEntries {
			want = abi.SendFull
		}
		if c != want {
			t.Fatalf("send %d answered %d, want %d", i, c, want)
		}
	}
	if d.OutboxLen() != engine.MaxOutboxEntries {
		t.Fatalf("outbox holds %d, want %d", d.OutboxLen(), engine.MaxOutboxEntries)
	}
	// Delivering one makes room for exactly one.
	d.SentDelivered(1)
	codes, err = run(t, d, 3, sendCmd(2, false, 1, 4))
	if err != nil || !bytes.Equal(codes, []byte{abi.SendQueued, abi.SendFull}) {
		t.Fatalf("after one delivery: codes %v err %v", codes, err)
	}
}

func TestSendByteBound(t *testing.T) {
	e := newSenderEnv(t, nil)
	d := spawn(t, e.rt, "sender", engine.SpawnOptions{})
	n := engine.MaxOutboxBytes / engine.MaxSendBytes
	codes, err := run(t, d, 1, sendCmd(uint32(n+1), false, 1, engine.MaxSendBytes))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != n+1 || codes[n-1] != abi.SendQueued || codes[n] != abi.SendFull {
		t.Fatalf("codes %v: want %d queued then full", codes, n)
	}
}

func TestOutboxTravelsInSnapshot(t *testing.T) {
	ctx := context.Background()
	e := newSenderEnv(t, nil)
	id := newID(t)
	d, err := e.rt.Spawn(ctx, "sender", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, d, 1, sendCmd(4, false, 77, 5)); err != nil {
		t.Fatal(err)
	}
	d.SentDelivered(2)
	b, err := d.EncodeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Decode(b, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	clear(b) // the restored outbox must not alias the encoded bytes
	e2 := newSenderEnv(t, nil)
	d2 := restoreAs(t, e2.rt, id, s)
	wantSeqs(t, d2, 1, 3, 4)
	if p := d2.PendingSends(1); p[0].Target != 77 || len(p[0].Payload) != 5 || binary.LittleEndian.Uint32(p[0].Payload) != 0 {
		t.Fatalf("restored entry %+v", p[0])
	}
	if _, err := run(t, d2, 2, sendCmd(1, false, 77, 5)); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, d2, 1, 3, 4, 5)
}

func restoreAs(t *testing.T, rt *engine.Runtime, id identity.Identity, s *snapshot.Snapshot) *engine.Daemon {
	t.Helper()
	d, err := rt.SpawnFromSnapshot(context.Background(), "sender", id, s, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A crash redo must rebuild the outbox the live run had, even though the
// restored outbox is fuller than it was live: the send results are
// recorded, so a send answered "queued" live is queued again, same seq.
func TestRedoRebuildsOutbox(t *testing.T) {
	ctx := context.Background()
	j := &memJournal{}
	e := newSenderEnv(t, j)
	id := newID(t)
	d, err := e.rt.Spawn(ctx, "sender", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, d, 1, sendCmd(engine.MaxOutboxEntries, false, 5, 4)); err != nil {
		t.Fatal(err)
	}
	ckpt, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ckpt = ckpt.Clone()
	for seq := uint64(1); seq <= 10; seq++ {
		d.SentDelivered(seq)
	}
	codes, err := run(t, d, 2, sendCmd(3, false, 6, 4))
	if err != nil || !bytes.Equal(codes, []byte{0, 0, 0}) {
		t.Fatalf("live codes %v err %v", codes, err)
	}
	live := seqsOf(d.PendingSends(0))

	e2 := newSenderEnv(t, nil)
	d2 := restoreAs(t, e2.rt, id, ckpt)
	last := j.entries[len(j.entries)-1]
	outs, err := d2.Redo(ctx, last.ev, last.rec)
	if err != nil {
		t.Fatalf("redo: %v", err)
	}
	if len(outs) != 1 || !bytes.Equal(outs[0].Payload, []byte{0, 0, 0}) {
		t.Fatalf("redo emitted %v, want the live codes", outs)
	}
	got := seqsOf(d2.PendingSends(0))
	if len(got) != engine.MaxOutboxEntries+3 || d2.OutSeq() != d.OutSeq() {
		t.Fatalf("redo outbox: %d entries, out seq %d; want %d and %d", len(got), d2.OutSeq(), engine.MaxOutboxEntries+3, d.OutSeq())
	}
	for i, s := range live {
		if got[len(got)-len(live)+i] != s {
			t.Fatalf("redo seqs differ from the live run's at %d", i)
		}
	}
}
