package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// BenchmarkDrain drains N small daemons (counter-wat, 64 KiB of memory;
// N = 1000, or WASMESH_BENCH_DAEMONS) off one of three in-process nodes to
// the other two while 8 senders keep sending to them by name, and reports
// the drain's total time and the per-daemon pause p50/p99 (issue 13's
// goals: ≤ 5 s, p99 ≤ 50 ms), with one daemon's migration alone, on the
// same nodes before the drain, as the same-run baseline. The drain runs
// --parallel DefaultDrainParallel, or WASMESH_BENCH_PARALLEL.
//
//	go test -run '^$' -bench Drain -benchtime 1x ./node/
func BenchmarkDrain(b *testing.B) {
	daemons := 1000
	if s := os.Getenv("WASMESH_BENCH_DAEMONS"); s != "" {
		var err error
		if daemons, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	parallel := DefaultDrainParallel // what `wasmesh node drain` does
	if s := os.Getenv("WASMESH_BENCH_PARALLEL"); s != "" {
		var err error
		if parallel, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		a := benchNode(b, "a", DurabilitySync)
		nb := benchNode(b, "b", DurabilitySync, a.GossipAddr())
		nc := benchNode(b, "c", DurabilitySync, a.GossipAddr())
		for _, n := range []*Node{a, nb, nc} {
			for deadline := time.Now().Add(20 * time.Second); len(n.peers()) < 2; {
				if time.Now().After(deadline) {
					b.Fatal("cluster did not form")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
				b.Fatal(err)
			}
		}
		names := make([]string, daemons)
		for i := range names {
			names[i] = fmt.Sprintf("d%d", i)
			if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: names[i]}); err != nil {
				b.Fatal(err)
			}
		}
		// Baseline: one daemon moved alone, then back.
		alone, err := a.Migrate(ctx, MigrateRequest{Ref: names[0], To: "b"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := nb.Migrate(ctx, MigrateRequest{Ref: names[0], To: "a"}, nil); err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var sendErr error
		var mu sync.Mutex
		for s := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := s; ; i += 8 {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := nb.Send(ctx, names[i%daemons], []byte("x")); err != nil {
						mu.Lock()
						sendErr = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		b.StartTimer()
		res, err := a.Drain(ctx, DrainRequest{Node: "a", Parallel: parallel}, nil)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatalf("drain: %v", err)
		}
		if sendErr != nil {
			b.Fatalf("a sender failed during the drain: %v", sendErr)
		}
		if res.Moved != daemons || len(a.rt.Daemons()) != 0 {
			b.Fatalf("moved %d of %d; %d left on a", res.Moved, daemons, len(a.rt.Daemons()))
		}
		pauses := make([]float64, 0, len(res.Daemons))
		for _, d := range res.Daemons {
			pauses = append(pauses, d.PauseMillis)
		}
		slices.Sort(pauses)
		b.ReportMetric(res.Millis/1000, "drain-s")
		b.ReportMetric(pauses[len(pauses)/2], "pause-p50-ms")
		b.ReportMetric(pauses[len(pauses)*99/100], "pause-p99-ms")
		b.ReportMetric(alone.PauseMillis, "alone-pause-ms")
		b.ReportMetric(alone.TotalMillis, "alone-total-ms")
	}
}
