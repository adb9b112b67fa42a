package driver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
)

// dirtyDaemon spawns the dirty fixture on n holding size bytes past page 0.
func dirtyDaemon(t *testing.T, n *testNode, size int) *engine.Daemon {
	t.Helper()
	return spawnSized(t, n, "dirty.wasm", size)
}

func dirtyPayload(k uint32) []byte { return binary.LittleEndian.AppendUint32([]byte{'d'}, k) }

// TestPreCopyRounds: while the base and each round travel, the daemon
// dirties pages (the test does it from the frame hook, so each round
// sees exactly what was dirtied during the previous transfer). Rounds go
// on while the dirty set shrinks and is above the threshold, stop at the
// bound, and the moved daemon's memory is exactly the source's.
func TestPreCopyRounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		// dirty[i] pages are dirtied while transfer i travels (0: the base)
		dirty     []uint32
		bound     int
		rounds    int
		converged bool
	}{
		// Round 1 finds 20 pages (and page 0, the count's digits), round 2
		// finds 5+1, round 3 nothing: frozen with an empty dirty set.
		{name: "converges", dirty: []uint32{20, 5}, rounds: 2, converged: true},
		// Every transfer lets as much be dirtied as it carried: round 2
		// would resend as much as round 1, so the daemon is frozen then.
		{name: "not-shrinking", dirty: []uint32{10, 10, 10}, rounds: 1},
		{name: "bound", dirty: []uint32{20, 5}, bound: 1, rounds: 1},
		{name: "no-rounds", dirty: []uint32{20}, bound: -1, rounds: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2, fastTiming)
			a, b := c.Nodes[0], c.Nodes[1]
			d := dirtyDaemon(t, a, 4<<20)
			origin := d.Origin()
			var mu sync.Mutex
			var hookErr error
			c.SetDrop(func(from, _ driver.NodeID, frame []byte) bool {
				round, index, ok := driver.PreCopyFrame(frame)
				if !ok || from != a.ID || index != 0 || int(round) >= len(tc.dirty) {
					return false
				}
				if _, err := d.Deliver(context.Background(), engine.Event{Payload: dirtyPayload(tc.dirty[round])}); err != nil {
					mu.Lock()
					hookErr = err
					mu.Unlock()
				}
				return false
			})
			opts := driver.DefaultOptions()
			opts.PreCopyRounds = tc.bound
			h, err := a.Mig.StartMigrationWith(context.Background(), origin, a.ID, b.ID, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.WaitTimeout(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			c.SetDrop(nil)
			mu.Lock()
			if hookErr != nil {
				t.Fatal(hookErr)
			}
			mu.Unlock()
			st := h.Stats()
			if !st.PreCopied || st.Rounds != tc.rounds || st.Converged != tc.converged || len(st.PreCopyBytes) != tc.rounds+1 {
				t.Fatalf("rounds %d (want %d), converged %v (want %v), pre-copy bytes %v",
					st.Rounds, tc.rounds, st.Converged, tc.converged, st.PreCopyBytes)
			}
			// What the hook dirtied and the size event, replayed on a
			// fresh daemon of the same kind, give the memory the moved one
			// must hold; both then answer "get" with the same count.
			ref := dirtyDaemon(t, a, 4<<20)
			dirtied := min(len(tc.dirty), tc.rounds+1)
			for _, k := range tc.dirty[:dirtied] {
				if _, err := ref.Deliver(context.Background(), engine.Event{Payload: dirtyPayload(k)}); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := get(t, b, origin), get(t, a, ref.Origin()); got != want || got != dirtied+1 {
				t.Fatalf("count on the target %d, reference %d, want %d", got, want, dirtied+1)
			}
			moved, err := b.RT.Daemon(origin)
			if err != nil {
				t.Fatal(err)
			}
			got, err := moved.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Pages) != len(want.Pages) {
				t.Fatalf("pages: moved %d, reference %d", len(got.Pages), len(want.Pages))
			}
			for i := range want.Pages {
				if got.Pages[i].Index != want.Pages[i].Index || !bytes.Equal(got.Pages[i].Data, want.Pages[i].Data) {
					t.Fatalf("page %d differs", want.Pages[i].Index)
				}
			}
		})
	}
}

// A round for a migration with nothing staged here is refused.
func TestPreCopyRoundWithoutBase(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	err := b.Mig.Receive(a.ID, driver.RoundChunk(77, 1, []byte{2, 0, 0, 0, 0}))
	if !errors.Is(err, driver.ErrBadFrame) {
		t.Fatalf("round without a base: %v", err)
	}
	if n := b.Mig.MapSizes()["inbound"]; n != 0 {
		t.Fatalf("a refused round holds %d inbound reservations", n)
	}
}

// A round past the target's inbound budget is refused: the staged base is
// given up with its reservation, and the migration goes ahead with a full
// snapshot, which fits where base and round together did not.
func TestPreCopyRoundOverBudget(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d := dirtyDaemon(t, a, 4<<20)
	origin := d.Origin()
	var mu sync.Mutex
	var hookErr error
	var staged uint64
	c.SetDrop(func(from, _ driver.NodeID, frame []byte) bool {
		round, index, ok := driver.PreCopyFrame(frame)
		if !ok || from != a.ID || index != 0 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		switch round {
		case 0:
			_, hookErr = d.Deliver(context.Background(), engine.Event{Payload: dirtyPayload(20)})
		case 1:
			// The base is staged (the source sends a round only after its
			// acknowledgement): room for it, and for a full snapshot, but
			// not for the round on top.
			staged = b.Mig.Resources().StagedBytes
			b.Mig.SetInboundBudget(staged + 64<<10)
		}
		return false
	})
	h, err := a.Mig.StartMigrationWith(context.Background(), origin, a.ID, b.ID, driver.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitTimeout(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.SetDrop(nil)
	mu.Lock()
	defer mu.Unlock()
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	st := h.Stats()
	if staged == 0 || st.PreCopied || st.Rounds != 0 {
		t.Fatalf("staged %d bytes; pre-copied %v with %d rounds, want a full snapshot after the refused round", staged, st.PreCopied, st.Rounds)
	}
	if got := get(t, b, origin); got != 2 {
		t.Fatalf("count on the target %d, want 2", got)
	}
	if r := b.Mig.Resources(); r.Staged != 0 || r.StagedBytes != 0 {
		t.Fatalf("target still holds %d staged bases (%d bytes)", r.Staged, r.StagedBytes)
	}
}
