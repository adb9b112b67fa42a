package engine_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
)

// memJournal keeps what the runtime journals, as the node's WAL would.
type memJournal struct {
	mu      sync.Mutex
	next    uint64
	begins  []uint64 // input seq of each Begin
	entries []journaled
}

type journaled struct {
	inc, origin, inputSeq uint64
	ev                    engine.Event
	rec                   []byte
}

func (j *memJournal) Begin(origin, inputSeq uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next++
	j.begins = append(j.begins, inputSeq)
	return j.next
}

func (j *memJournal) Record(inc, origin, inputSeq uint64, ev *engine.Event, rec []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := *ev
	e.Payload = bytes.Clone(ev.Payload)
	j.entries = append(j.entries, journaled{inc, origin, inputSeq, e, bytes.Clone(rec)})
}

func TestRedoReproducesClockAndRandomDependentState(t *testing.T) {
	ctx := context.Background()
	j := &memJournal{}
	rt := newRuntime(t, engine.Config{Journal: j})
	if _, err := rt.RegisterModule(ctx, fixture(t, "entropy.wasm"), "entropy"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	d, err := rt.Spawn(ctx, "entropy", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Incarnation() == 0 || len(j.begins) != 1 || j.begins[0] != 0 {
		t.Fatalf("spawn did not begin a journal history: inc %d, begins %v", d.Incarnation(), j.begins)
	}
	base, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 20 {
		outs, err := d.Deliver(ctx, engine.Event{Sender: 9, Seq: uint64(i + 1), Payload: []byte("tick")})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, outs[0].Payload)
	}
	if len(j.entries) != 20 || j.entries[19].inputSeq != 20 || j.entries[0].inc != d.Incarnation() {
		t.Fatalf("journaled %d entries, last %+v", len(j.entries), j.entries[len(j.entries)-1])
	}
	if len(j.entries[0].rec) != 16 { // an 8-byte clock reading and 8 random bytes
		t.Fatalf("event 1 recorded %d bytes of readings, want 16", len(j.entries[0].rec))
	}
	wantHead, wantHash := d.ChainHead()
	if err := rt.Stop(ctx, d.Origin()); err != nil {
		t.Fatal(err)
	}

	// A crash: the daemon comes back from the snapshot taken before the
	// events and redoes them from the journal.
	entries := append([]journaled(nil), j.entries...)
	d2, err := rt.SpawnFromSnapshot(ctx, "entropy", id, base, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Incarnation() == d.Incarnation() {
		t.Fatal("the restored daemon reuses the old incarnation")
	}
	v := chain.NewValidator(base.ChainHead, base.HeadHash)
	for i, e := range entries {
		outs, err := d2.Redo(ctx, e.ev, e.rec)
		if err != nil {
			t.Fatalf("redo %d: %v", i, err)
		}
		if !bytes.Equal(outs[0].Payload, want[i]) {
			t.Fatalf("redo %d emitted %x, live run emitted %x", i, outs[0].Payload, want[i])
		}
		if err := v.Accept(outs[0].Link, outs[0].Payload); err != nil {
			t.Fatalf("redo %d: chain: %v", i, err)
		}
	}
	if h, hh := d2.ChainHead(); h != wantHead || hh != wantHash {
		t.Fatal("the redone chain head differs from the acknowledged one")
	}
	// Redone events are journaled again, under the new incarnation.
	if got := len(j.entries); got != 40 || j.entries[39].inc != d2.Incarnation() || j.entries[39].inputSeq != 20 {
		t.Fatalf("after redo the journal has %d entries, last %+v", got, j.entries[got-1])
	}
	// A live event after the redo reads the real clock again.
	outs, err := d2.Deliver(ctx, engine.Event{Sender: 9, Seq: 21, Payload: []byte("tick")})
	if err != nil || len(outs) != 1 {
		t.Fatalf("live event after redo: %v", err)
	}
	if len(j.entries[40].rec) != 16 {
		t.Fatalf("live event after redo recorded %d bytes", len(j.entries[40].rec))
	}
}

func TestRedoRefusesReadingsThatDoNotFit(t *testing.T) {
	ctx := context.Background()
	rt := readyRuntime(t, map[string][]byte{"entropy": fixture(t, "entropy.wasm")})
	d := spawn(t, rt, "entropy", engine.SpawnOptions{})
	before, _ := d.ChainHead()
	// Too few recorded bytes: the guest asks for more than was recorded.
	_, err := d.Redo(ctx, engine.Event{Sender: 1, Seq: 1, Payload: []byte("tick")}, []byte{1, 2, 3})
	if !errors.Is(err, engine.ErrRedoDiverged) {
		t.Fatalf("short readings: %v", err)
	}
	// Too many: some recorded readings were never consumed.
	_, err = d.Redo(ctx, engine.Event{Sender: 1, Seq: 1, Payload: []byte("get")}, make([]byte, 16))
	if !errors.Is(err, engine.ErrRedoDiverged) {
		t.Fatalf("unconsumed readings: %v", err)
	}
	if after, _ := d.ChainHead(); after != before || d.Stats().InputSeq != 0 {
		t.Fatalf("a refused redo changed the daemon: input seq %d", d.Stats().InputSeq)
	}
	// The daemon still works.
	if got := send(t, d, "tick"); len(got) != 1 {
		t.Fatalf("after refused redos: %q", got)
	}
}
