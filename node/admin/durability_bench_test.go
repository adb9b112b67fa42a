package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// BenchmarkDurabilityAPI is node.BenchmarkDurability as clients see it:
// each event one POST /v1/daemons/{id}/events through the Go client over
// loopback HTTP, to 100 daemons with 4 sequential senders each, acknowledged
// after the journal's fsync (sync) or at once (interval). Compare rows of
// one run.
//
//	go test -run '^$' -bench DurabilityAPI -benchtime 20000x ./node/admin/
func BenchmarkDurabilityAPI(b *testing.B) {
	for _, mode := range []node.Durability{node.DurabilityInterval, node.DurabilitySync} {
		b.Run(fmt.Sprintf("daemons=100/senders=4/%s", mode), func(b *testing.B) {
			ctx := context.Background()
			n, err := node.New(ctx, node.Config{
				DataDir: b.TempDir(), Name: "bench", ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
				Dev: true, Durability: mode,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(ctx)
			srv := httptest.NewServer(Handler(n, Options{}))
			defer srv.Close()
			c, err := NewClient(srv.URL, "")
			if err != nil {
				b.Fatal(err)
			}
			c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
			if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
				b.Fatal(err)
			}
			const daemons, senders = 100, 4
			ids := make([]string, daemons)
			for i := range ids {
				info, err := n.Spawn(ctx, node.SpawnRequest{Kind: "counter"})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = info.ID
			}
			workers := daemons * senders
			per := max(b.N/workers, 1)
			lat := make([][]time.Duration, workers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for range per {
						t0 := time.Now()
						if _, err := c.Send(ctx, ids[w%daemons], []byte("x")); err != nil {
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
		})
	}
}
