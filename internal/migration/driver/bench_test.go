package driver_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// BenchmarkMigrate moves a daemon holding n bytes of live state back and
// forth between two nodes over real QUIC on loopback. ns/op is the total
// migration time; pause-ms is how long the daemon processed no event;
// MB/s is live state over total time. Compare with BenchmarkQUICBaseline,
// which moves the same bytes over a bare stream of the same transport.
func BenchmarkMigrate(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20, 64 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			c := newClusterB(b)
			a, t := c.Nodes[0], c.Nodes[1]
			k, err := a.RT.RegisterModule(context.Background(), fixtureBytes(b, "testdata", "ballast.wasm"), "")
			if err != nil {
				b.Fatal(err)
			}
			d, err := a.RT.Spawn(context.Background(), string(k.Digest), newIdentity(b), engine.SpawnOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var n [4]byte
			binary.LittleEndian.PutUint32(n[:], uint32(size))
			if _, err := d.Deliver(context.Background(), engine.Event{Payload: n[:]}); err != nil {
				b.Fatal(err)
			}
			origin := d.Origin()
			from, to := a, t
			var pause time.Duration
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, err := from.Mig.StartMigration(context.Background(), origin, from.ID, to.ID)
				if err != nil {
					b.Fatal(err)
				}
				if err := h.WaitTimeout(time.Minute); err != nil {
					b.Fatal(err)
				}
				pause += h.Stats().Pause
				from, to = to, from
			}
			b.ReportMetric(float64(pause.Microseconds())/1000/float64(b.N), "pause-ms")
		})
	}
}

// BenchmarkQUICBaseline sends the same number of bytes over one stream of
// the same transport: the floor a migration's transfer is measured against.
func BenchmarkQUICBaseline(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20, 64 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			c := newClusterB(b)
			a, t := c.Nodes[0], c.Nodes[1]
			got := make(chan int, 1)
			t.EP.Handle("bench/sink", func(ctx context.Context, s *meshquic.Stream) error {
				total := 0
				var buf []byte
				for total < size {
					p, err := s.RecvBytes(buf[:0])
					if err != nil {
						return err
					}
					buf = p
					total += len(p)
				}
				got <- total
				return s.Send(struct{}{})
			})
			chunk := make([]byte, 256<<10)
			for i := range chunk {
				chunk[i] = 0x5a
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := a.EP.OpenStream(context.Background(), meshquic.PeerID(t.EP.ID()), "bench/sink")
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < size; sent += len(chunk) {
					if err := s.SendBytes(chunk[:min(len(chunk), size-sent)]); err != nil {
						b.Fatal(err)
					}
				}
				<-got
				var ack struct{}
				if err := s.Recv(&ack); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func newClusterB(b *testing.B) *drivertest.Cluster { return newCluster(b, 2, fastTiming) }
