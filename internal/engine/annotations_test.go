package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func logTexts(d *engine.Daemon) []string {
	var out []string
	for _, l := range d.Logs() {
		out = append(out, l.Text)
	}
	return out
}

// What an operator sees of a daemon (counters, recent logs, name and kind
// name) comes back from its snapshot, through an encode/decode as on disk
// or on the wire.
func TestAnnotationsSurviveSpawnFromSnapshot(t *testing.T) {
	ctx := context.Background()
	mod := fixture(t, "logcount.wasm")
	src := readyRuntime(t, map[string][]byte{"logcount": mod})
	dst := readyRuntime(t, map[string][]byte{"": mod})
	id := newID(t)
	d, err := src.Spawn(ctx, "logcount", id, engine.SpawnOptions{Name: "c1", KindName: "logcount"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		send(t, d, "x")
	}
	if _, err := d.Deliver(ctx, engine.Event{Payload: make([]byte, 1<<20)}); err == nil {
		t.Fatal("an oversized event was accepted")
	}
	before := d.Stats()
	b, err := d.EncodeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Decode(b, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	digest := string(d.Kind().Digest)
	moved, err := dst.SpawnFromSnapshot(ctx, digest, id, snap, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := moved.Stats()
	if st.EventsProcessed != 5 || st.EventsEmitted != 5 || st.Errors != 1 || st.Snapshots != before.Snapshots+1 {
		t.Fatalf("counters after the move: processed %d emitted %d errors %d snapshots %d (before: %+v)",
			st.EventsProcessed, st.EventsEmitted, st.Errors, st.Snapshots, before)
	}
	want := []string{"event 1", "event 2", "event 3", "event 4", "event 5"}
	if got := logTexts(moved); !slices.Equal(got, want) {
		t.Fatalf("logs after the move %q, want %q", got, want)
	}
	if c := moved.Carried(); c.Name != "c1" || c.KindName != "logcount" {
		t.Fatalf("carried %+v", c)
	}
	if moved.KindName() != "logcount" || moved.Name() != "" {
		t.Fatalf("kind name %q, name %q: the kind name is taken, the name is the node's to give", moved.KindName(), moved.Name())
	}
	// It goes on counting and logging from there.
	if got := send(t, moved, "x"); !slices.Equal(got, []string{"6"}) {
		t.Fatalf("next output %q", got)
	}
	if st := moved.Stats(); st.EventsProcessed != 6 {
		t.Fatalf("processed %d after one more event", st.EventsProcessed)
	}
	if got := logTexts(moved); got[len(got)-1] != "event 6" {
		t.Fatalf("last log %q", got[len(got)-1])
	}
	// A snapshot without annotations (an older build's) still restores;
	// events processed and emitted are then its input and chain sequence.
	snap.Annotations = nil
	plain, err := snapshot.Encode(snap, id)
	if err != nil {
		t.Fatal(err)
	}
	old, err := snapshot.Decode(plain, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	third := readyRuntime(t, map[string][]byte{"": mod})
	d3, err := third.SpawnFromSnapshot(ctx, digest, id, old, engine.SpawnOptions{KindName: "given"})
	if err != nil {
		t.Fatal(err)
	}
	if st := d3.Stats(); st.EventsProcessed != 5 || st.EventsEmitted != 5 || st.InputSeq != 5 || st.Errors != 0 ||
		d3.KindName() != "given" || len(d3.Logs()) != 0 {
		t.Fatalf("from an unannotated snapshot: %+v, kind %q, %d logs", st, d3.KindName(), len(d3.Logs()))
	}
}

// The log lines that travel are bounded; the newest are kept.
func TestAnnotationsKeepNewestLogs(t *testing.T) {
	ctx := context.Background()
	rt := readyRuntime(t, map[string][]byte{"logcount": fixture(t, "logcount.wasm")})
	d := spawn(t, rt, "logcount", engine.SpawnOptions{})
	for range snapshot.MaxLogLines + 20 {
		send(t, d, "x")
	}
	s, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := s.Annotations.Logs
	if len(logs) != snapshot.MaxLogLines || logs[len(logs)-1].Text != fmt.Sprintf("event %d", snapshot.MaxLogLines+20) || logs[0].Text != "event 21" {
		t.Fatalf("%d lines travel, from %q to %q", len(logs), logs[0].Text, logs[len(logs)-1].Text)
	}
	if s.Annotations.Counters.EventsProcessed != snapshot.MaxLogLines+20 {
		t.Fatalf("processed %d", s.Annotations.Counters.EventsProcessed)
	}
}

// A pre-copy moves the base early and the final delta at the freeze: the
// committed daemon has the counters and logs of the freeze, not the base's.
func TestAnnotationsTravelInDelta(t *testing.T) {
	ctx := context.Background()
	mod := fixture(t, "logcount.wasm")
	src := readyRuntime(t, map[string][]byte{"logcount": mod})
	dst := readyRuntime(t, map[string][]byte{"": mod})
	id := newID(t)
	d, err := src.Spawn(ctx, "logcount", id, engine.SpawnOptions{Name: "c1", KindName: "logcount"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, d, "x")
	base, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send(t, d, "x")
	send(t, d, "x")
	staged, err := dst.Stage(ctx, string(d.Kind().Digest), base, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delta, err := d.FreezeAndSnapshotDelta(ctx, base, func(context.Context, engine.Event) ([]engine.Output, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Over the wire the delta is an encoded snapshot.
	b, err := snapshot.Encode(delta.Snap, id)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := snapshot.Decode(b, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	moved, err := staged.Commit(ctx, id, &engine.Delta{Snap: ds, Removed: delta.Removed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := moved.Stats(); st.EventsProcessed != 3 || st.InputSeq != 3 {
		t.Fatalf("processed %d, input seq %d after the delta", st.EventsProcessed, st.InputSeq)
	}
	if got, want := logTexts(moved), []string{"event 1", "event 2", "event 3"}; !slices.Equal(got, want) {
		t.Fatalf("logs %q, want %q", got, want)
	}
	if c := moved.Carried(); c.Name != "c1" || c.KindName != "logcount" || moved.KindName() != "logcount" {
		t.Fatalf("carried %+v, kind name %q", c, moved.KindName())
	}
}
