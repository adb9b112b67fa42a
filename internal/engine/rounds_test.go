package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func dirtyPages(t *testing.T, d *engine.Daemon, k uint32) {
	t.Helper()
	p := binary.LittleEndian.AppendUint32([]byte{'d'}, k)
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: p}); err != nil {
		t.Fatal(err)
	}
}

// Rounds of a running daemon, each relative to the merge of the previous
// ones, bring a staged copy to the source's exact state: the final delta
// carries only what the last round missed.
func TestPreCopyRoundsAdvanceStaged(t *testing.T) {
	ctx := context.Background()
	src := readyRuntime(t, map[string][]byte{"dirty": fixture(t, "dirty.wasm")})
	dst := readyRuntime(t, map[string][]byte{"dirty": fixture(t, "dirty.wasm")})
	id := newID(t)
	d, err := src.Spawn(ctx, "dirty", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], 2<<20) // pages 1..32
	if _, err := d.Deliver(ctx, engine.Event{Payload: n[:]}); err != nil {
		t.Fatal(err)
	}
	base, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	staged, err := dst.Stage(ctx, "dirty", base, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur := base
	// Round 1 sees pages 1..10 and page 0 (the digits of the count);
	// round 2 sees 11..13 and page 0 again.
	for i, k := range []uint32{10, 3} {
		dirtyPages(t, d, k)
		r, err := d.SnapshotDelta(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(r.Snap.Pages), int(k)+1; got != want {
			t.Fatalf("round %d carries pages %v, want %d", i+1, pageIndexes(r.Snap), want)
		}
		if r.DirtyBytes() != int64(k+1)*snapshot.PageSize {
			t.Fatalf("round %d: dirty bytes %d", i+1, r.DirtyBytes())
		}
		// Not frozen: the daemon still processes events itself.
		if got := send(t, d, "x"); len(got) != 1 {
			t.Fatalf("running daemon after a round: %q", got)
		}
		if err := staged.Advance(ctx, r); err != nil {
			t.Fatal(err)
		}
		cur = r.Merged(cur)
		if len(cur.Pages) != len(base.Pages) {
			t.Fatalf("merged base has %d pages, want %d", len(cur.Pages), len(base.Pages))
		}
	}
	dirtyPages(t, d, 1) // page 14
	final, err := d.FreezeAndSnapshotDelta(ctx, cur, func(context.Context, engine.Event) ([]engine.Output, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := pageIndexes(final.Snap); len(got) != 2 || got[0] != 0 || got[1] != 14 {
		t.Fatalf("final delta carries pages %v, want [0 14]", got)
	}
	moved, err := staged.Commit(ctx, id, final, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1 size + 3 dirty + 2 "x" events counted before the freeze.
	if got := send(t, moved, "x"); got[0] != "6" {
		t.Fatalf("count after commit %q, want 6", got)
	}
	d.SetInterceptor(nil)
	send(t, d, "x")
	want, _ := d.Snapshot(ctx)
	got, _ := moved.Snapshot(ctx)
	if len(want.Pages) != len(got.Pages) {
		t.Fatalf("pages: source %d, target %d", len(want.Pages), len(got.Pages))
	}
	for i := range want.Pages {
		if want.Pages[i].Index != got.Pages[i].Index || !bytes.Equal(want.Pages[i].Data, got.Pages[i].Data) {
			t.Fatalf("page %d differs", want.Pages[i].Index)
		}
	}
}

func TestPreCopyRoundRefusesForeignBase(t *testing.T) {
	ctx := context.Background()
	rt := readyRuntime(t, map[string][]byte{"dirty": fixture(t, "dirty.wasm")})
	a := spawn(t, rt, "dirty", engine.SpawnOptions{})
	b := spawn(t, rt, "dirty", engine.SpawnOptions{})
	sb, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SnapshotDelta(ctx, sb); err == nil {
		t.Fatal("a round relative to another daemon's snapshot was taken")
	}
	sa, _ := a.Snapshot(ctx)
	other := readyRuntime(t, map[string][]byte{"dirty": fixture(t, "dirty.wasm")})
	staged, err := other.Stage(ctx, "dirty", sb, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.SnapshotDelta(ctx, sa)
	if err != nil {
		t.Fatal(err)
	}
	if err := staged.Advance(ctx, r); err == nil {
		t.Fatal("a staged daemon took another daemon's round")
	}
}
