package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func TestPreCopyDeltaStageCommit(t *testing.T) {
	ctx := context.Background()
	src := readyRuntime(t, map[string][]byte{"ballast": fixture(t, "ballast.wasm")})
	dst := readyRuntime(t, map[string][]byte{"ballast": fixture(t, "ballast.wasm")})
	id := newID(t)
	d, err := src.Spawn(ctx, "ballast", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], 4<<20)
	if _, err := d.Deliver(ctx, engine.Event{Payload: n[:]}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		send(t, d, "x")
	}
	base, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon keeps running after the base: more events change the
	// count and the digits it writes into page 0.
	for i := 0; i < 7; i++ {
		send(t, d, "x")
	}
	staged, err := dst.Stage(ctx, "ballast", base, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Daemon(d.Origin()); !errors.Is(err, engine.ErrDaemonNotFound) {
		t.Fatal("a staged daemon is visible before Commit")
	}
	held := 0
	delta, err := d.FreezeAndSnapshotDelta(ctx, base, func(context.Context, engine.Event) ([]engine.Output, error) {
		held++
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(delta.Snap.Pages) != 1 || delta.Snap.Pages[0].Index != 0 || len(delta.Removed) != 0 {
		t.Fatalf("delta carries pages %v, removed %v; only page 0 changed", pageIndexes(delta.Snap), delta.Removed)
	}
	if len(base.Pages) < 64 {
		t.Fatalf("base has only %d pages", len(base.Pages))
	}
	// Frozen: the source's daemon no longer processes events itself.
	if _, err := d.Deliver(ctx, engine.Event{Payload: []byte("x")}); err != nil || held != 1 {
		t.Fatalf("frozen deliver: %v, held %d", err, held)
	}
	if _, err := staged.Commit(ctx, newID(t), delta, nil); !errors.Is(err, engine.ErrSnapshotIdentityMismatch) {
		t.Fatalf("commit with a foreign identity: %v", err)
	}
	staged, _ = dst.Stage(ctx, "ballast", base, engine.SpawnOptions{})
	moved, err := staged.Commit(ctx, id, delta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := send(t, moved, "x"); got[0] != "13" {
		t.Fatalf("after commit the count is %q, want 13", got)
	}
	// Its memory is the source's exactly: a full snapshot of each agrees.
	want, _ := d.Snapshot(ctx)
	got, _ := moved.Snapshot(ctx)
	if len(want.Pages) != len(got.Pages) {
		t.Fatalf("pages: source %d, target %d", len(want.Pages), len(got.Pages))
	}
	for i := 1; i < len(want.Pages); i++ { // page 0 holds the digits of the one extra event
		if want.Pages[i].Index != got.Pages[i].Index || string(want.Pages[i].Data) != string(got.Pages[i].Data) {
			t.Fatalf("page %d differs", want.Pages[i].Index)
		}
	}
	// The committed daemon keeps counting on the merged state.
	if got := send(t, moved, "x"); got[0] != "14" {
		t.Fatalf("count %q", got)
	}
}

func pageIndexes(s *snapshot.Snapshot) []uint32 {
	var out []uint32
	for _, p := range s.Pages {
		out = append(out, p.Index)
	}
	return out
}
