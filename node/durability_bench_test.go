package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// BenchmarkDurability compares acknowledging after the journal's fsync
// (sync) with acknowledging at once (interval), through Node.Send — what
// the admin API calls per event — for one daemon and for 100, with
// `senders` concurrent sequential senders per daemon. Compare rows of one
// run: sync/interval events/s is the group commit's efficiency.
//
//	go test -run '^$' -bench Durability -benchtime 20000x ./node/
func BenchmarkDurability(b *testing.B) {
	for _, daemons := range []int{1, 100} {
		for _, senders := range []int{1, 4} {
			for _, mode := range []Durability{DurabilityInterval, DurabilitySync} {
				b.Run(fmt.Sprintf("daemons=%d/senders=%d/%s", daemons, senders, mode), func(b *testing.B) {
					benchDurability(b, mode, daemons, senders)
				})
			}
		}
	}
}

func benchDurability(b *testing.B, mode Durability, daemons, senders int) {
	ctx := context.Background()
	n, err := New(ctx, Config{
		DataDir: b.TempDir(), Name: "bench", ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		Dev: true, Durability: mode,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(ctx)
	if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, daemons)
	for i := range ids {
		info, err := n.Spawn(ctx, SpawnRequest{Kind: "counter"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = info.ID
	}
	workers := daemons * senders
	per := max(b.N/workers, 1)
	lat := make([][]time.Duration, workers)
	payload := []byte("x")
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		lat[w] = make([]time.Duration, 0, per)
		wg.Go(func() {
			id := ids[w%daemons]
			for range per {
				t0 := time.Now()
				if _, err := n.Send(ctx, id, payload); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	if n.wal != nil {
		st := n.wal.Stats()
		b.ReportMetric(float64(len(all))/float64(max(st.Fsyncs, 1)), "events/fsync")
	}
}
