package node

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// TestPipelinedStreamWhileMigratingBackAndForth: a third node keeps a
// window of exactly-once events in flight to a counter over the pipelined
// path while the counter migrates a→b→a→b…; every event must succeed and
// the counter's outputs must be exactly 1, 2, 3 … in send order: nothing
// lost, applied twice or reordered across the moves.
func TestPipelinedStreamWhileMigratingBackAndForth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 2)
	waitPeers(t, b, 2)
	waitPeers(t, c, 2)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	info, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "ctr", On: "a"})
	if err != nil {
		t.Fatal(err)
	}
	origin := originOf(t, info.ID)
	sender, err := ClientSender("pipelined-test")
	if err != nil {
		t.Fatal(err)
	}

	const moves = 6
	var migrated atomic.Int32
	migErr := make(chan error, 1)
	go func() {
		to := []string{"b", "a"}
		for i := 0; i < moves; i++ {
			if _, err := c.Migrate(ctx, MigrateRequest{Ref: "ctr", To: to[i%2]}, nil); err != nil {
				migErr <- err
				return
			}
			migrated.Add(1)
		}
		migErr <- nil
	}()

	const window = 32
	done := make(chan *meshquic.DeliverCall, window)
	var seq uint64
	start := func(call *meshquic.DeliverCall) {
		seq++
		to := a.ID()
		if r, ok := c.ep.Routes().Lookup(origin); ok {
			to = r.Node
		}
		call.To = to
		call.Event = meshquic.Event{Target: origin, Sender: sender, Seq: seq, Payload: []byte("x"), Once: true}
		c.ep.Go(ctx, call)
	}
	for range window {
		start(&meshquic.DeliverCall{Done: done})
	}
	var want uint64 = 1
	answeredBy := map[meshquic.NodeID]int{}
	migrating := true
	var stopAt uint64
	for want <= seq {
		call := <-done
		if call.Err != nil {
			t.Fatalf("event %d (after %d migrations): %v", call.Event.Seq, migrated.Load(), call.Err)
		}
		if call.Event.Seq != want {
			t.Fatalf("completion %d is event %d", want, call.Event.Seq)
		}
		if call.Resp.Duplicate || len(call.Resp.Outputs) != 1 {
			t.Fatalf("event %d: duplicate %v, %d outputs", want, call.Resp.Duplicate, len(call.Resp.Outputs))
		}
		if got := string(call.Resp.Outputs[0].Payload); got != strconv.FormatUint(want, 10) {
			t.Fatalf("event %d: counter says %s", want, got)
		}
		answeredBy[call.To]++
		want++
		if migrating {
			select {
			case err := <-migErr:
				if err != nil {
					t.Fatalf("migration %d: %v", migrated.Load()+1, err)
				}
				migrating = false
				stopAt = seq + 200
			default:
			}
		}
		// Keep streaming until every move happened, then a little more.
		if migrating || seq < stopAt {
			start(call)
		}
	}
	if migrated.Load() != moves {
		t.Fatalf("%d migrations, want %d", migrated.Load(), moves)
	}
	if len(answeredBy) != 2 {
		t.Fatalf("answers came from %v, want both nodes", answeredBy)
	}
	// The counter agrees with the sender: one more event gets seq+1.
	res, err := c.Send(ctx, "ctr", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Outputs[0]); got != strconv.FormatUint(seq+1, 10) {
		t.Fatalf("final count %s, want %d", got, seq+1)
	}
	t.Logf("%d events streamed across %d migrations, answered by %v", seq, moves, answeredBy)
}
