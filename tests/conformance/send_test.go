package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// TestConformanceSend plays the node's deliverer between two pingpong
// daemons of one runtime: every pending message goes to its target as an
// exactly-once event from the sender, and is acknowledged. The exchange
// must come out exact, and a redelivery must be answered as a duplicate.
func TestConformanceSend(t *testing.T) {
	ran := 0
	for _, l := range langs {
		if l.send == "" {
			continue
		}
		ran++
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			rt := newRuntime(t)
			kind := register(t, rt, l.send)
			x := newGuest(t, spawn(t, rt, kind, newID(t), engine.SpawnOptions{}))
			y := newGuest(t, spawn(t, rt, kind, newID(t), engine.SpawnOptions{}))
			byOrigin := map[uint64]*engine.Daemon{x.d.Origin(): x.d, y.d.Origin(): y.d}
			const limit = 200
			x.send([]byte(fmt.Sprintf("start %s %d", y.d.ID(), limit)))
			for moved := true; moved; {
				moved = false
				for _, from := range []*engine.Daemon{x.d, y.d} {
					for _, s := range from.PendingSends(0) {
						to := byOrigin[s.Target]
						if to == nil {
							t.Fatalf("message to unknown origin %016x", s.Target)
						}
						ev := engine.Event{Sender: from.Origin(), Seq: s.Seq, Payload: s.Payload, Once: true}
						if _, err := to.Deliver(ctx, ev); err != nil {
							t.Fatalf("deliver seq %d: %v", s.Seq, err)
						}
						if _, err := to.Deliver(ctx, ev); !errors.Is(err, engine.ErrDuplicateEvent) {
							t.Fatalf("redelivery of seq %d: got %v, want ErrDuplicateEvent", s.Seq, err)
						}
						from.SentDelivered(s.Seq)
						moved = true
					}
				}
			}
			sx, sy := stats(t, x), stats(t, y)
			if sx[0]+sy[0] != limit || sx[1] != sy[0] || sy[1] != sx[0] || sx[3]+sy[3] != 0 {
				t.Fatalf("x received/sent/last/bad %v, y %v; want %d messages, exact and in order", sx, sy, limit)
			}
			if x.d.OutSeq() != sx[1] || y.d.OutSeq() != sy[1] {
				t.Fatalf("out seqs %d, %d; want one per message sent (%d, %d)", x.d.OutSeq(), y.d.OutSeq(), sx[1], sy[1])
			}
		})
	}
	if ran == 0 {
		t.Fatal("no language has a send example")
	}
}

func stats(t *testing.T, g *guest) [4]uint64 {
	t.Helper()
	outs := g.send([]byte("get"))
	if len(outs) != 4 {
		t.Fatalf("get: %q", outs)
	}
	var v [4]uint64
	for i, o := range outs {
		n, err := strconv.ParseUint(string(o), 10, 64)
		if err != nil {
			t.Fatalf("get: %q", outs)
		}
		v[i] = n
	}
	return v
}
