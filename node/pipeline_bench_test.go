package node

import (
	"context"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// BenchmarkNodePipelined is remote delivery between two in-process nodes
// over the pipelined path: node a keeps a window of 64-byte events in
// flight to a counter on node b, with b acknowledging after the journal's
// fsync (sync) or at once (interval); compare the rows of one run.
//
//	go test -run '^$' -bench NodePipelined -benchtime 100000x ./node/
func BenchmarkNodePipelined(b *testing.B) {
	for _, mode := range []Durability{DurabilityInterval, DurabilitySync} {
		b.Run(string(mode), func(b *testing.B) { benchNodePipelined(b, mode) })
	}
}

func benchNode(b *testing.B, name string, mode Durability, join ...string) *Node {
	b.Helper()
	n, err := New(context.Background(), Config{
		DataDir: b.TempDir(), Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
		Dev: true, CheckpointInterval: -1, Durability: mode,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func benchNodePipelined(b *testing.B, mode Durability) {
	ctx := context.Background()
	a := benchNode(b, "a", mode)
	h := benchNode(b, "b", mode, a.GossipAddr())
	for deadline := time.Now().Add(10 * time.Second); len(a.peers()) != 1 || len(h.peers()) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("nodes did not see each other")
		}
	}
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		b.Fatal(err)
	}
	info, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", On: "b"})
	if err != nil {
		b.Fatal(err)
	}
	origin, err := abi.ParseOrigin(info.ID)
	if err != nil {
		b.Fatal(err)
	}
	const window = meshquic.PipeTargetWindow
	done := make(chan *meshquic.DeliverCall, window)
	payload := make([]byte, 64)
	var seq uint64
	start := func(c *meshquic.DeliverCall) {
		seq++
		c.To = h.ID()
		c.Event = meshquic.Event{Target: origin, Sender: 1, Seq: seq, Payload: payload}
		a.ep.Go(ctx, c)
	}
	run := func(n int) {
		sent := 0
		for ; sent < min(window, n); sent++ {
			start(&meshquic.DeliverCall{Done: done})
		}
		for got := 0; got < n; got++ {
			c := <-done
			if c.Err != nil || len(c.Resp.Outputs) != 1 {
				b.Fatalf("event %d: %v", c.Event.Seq, c.Err)
			}
			if sent < n {
				start(c)
				sent++
			}
		}
	}
	run(1000)
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	run(b.N)
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "events/s")
}
