package conformance

// Per-language figures for the README's "Guest languages" table
// (scripts/lang-table.sh runs these and prints it). All use the counter
// example, the one kind every language has with state.

import (
	"context"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// benchLangs are the rows with a counter.
func benchLangs() []lang {
	var out []lang
	for _, l := range langs {
		if l.counter != "" {
			out = append(out, l)
		}
	}
	return out
}

// BenchmarkSpawn is the time to instantiate a registered counter (the module
// is compiled once at registration, so this is instantiation, _initialize
// and wasmesh_init). It also reports the module's size.
func BenchmarkSpawn(b *testing.B) {
	ctx := context.Background()
	for _, l := range benchLangs() {
		b.Run(l.name, func(b *testing.B) {
			rt := newRuntimeWith(b, engine.Config{}) // default limits, as deployed
			kind := register(b, rt, l.counter)
			id := newID(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, err := rt.Spawn(ctx, kind, id, engine.SpawnOptions{})
				if err != nil {
					b.Fatal(err)
				}
				// Stopping frees the origin for the next spawn; it is not
				// part of the spawn cost.
				b.StopTimer()
				if err := rt.Stop(ctx, d.Origin()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			// After the loop: ResetTimer would drop an earlier metric.
			b.ReportMetric(float64(len(readModule(b, l.counter))), "module-bytes")
		})
	}
}

// BenchmarkEvent is the cost of one counter event through the host: input
// copy, guest call, output capture, chain link, journal. "native" is the
// same counter as a plain Go function, the floor the others pay over.
func BenchmarkEvent(b *testing.B) {
	ctx := context.Background()
	for _, l := range benchLangs() {
		b.Run(l.name, func(b *testing.B) {
			rt := newRuntimeWith(b, engine.Config{}) // default limits, as deployed
			d := spawn(b, rt, register(b, rt, l.counter), newID(b), engine.SpawnOptions{})
			var out engine.Outputs
			ev := engine.Event{Sender: 7, Payload: []byte("x")}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Seq = uint64(i + 1)
				if err := d.DeliverInto(ctx, ev, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// The benchmark measured real work only if every event counted.
			if string(out.Items[0].Payload) != strconv.Itoa(b.N) {
				b.Fatalf("last output %q after %d events", out.Items[0].Payload, b.N)
			}
		})
	}
	b.Run("native", func(b *testing.B) {
		var c nativeCounter
		var last []byte
		for i := 0; i < b.N; i++ {
			last = c.handle([]byte("x"))
		}
		if string(last) != strconv.Itoa(b.N) {
			b.Fatalf("last output %q after %d events", last, b.N)
		}
	})
}

// nativeCounter is the counter examples' handler in plain Go.
type nativeCounter struct {
	count uint64
	buf   []byte
}

//go:noinline
func (c *nativeCounter) handle(payload []byte) []byte {
	if string(payload) != "get" {
		c.count++
	}
	c.buf = strconv.AppendUint(c.buf[:0], c.count, 10)
	return c.buf
}

// BenchmarkSnapshot snapshots and encodes the counter after 1,000 events:
// "snapshot-bytes" is the guest state carried (non-zero memory pages),
// "encoded-bytes" the signed snapshot as it would travel.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	for _, l := range benchLangs() {
		b.Run(l.name, func(b *testing.B) {
			rt := newRuntimeWith(b, engine.Config{}) // default limits, as deployed
			d := spawn(b, rt, register(b, rt, l.counter), newID(b), engine.SpawnOptions{})
			g := newGuest(b, d)
			g.count(0, 1000)
			var live, enc int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := d.Snapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				e, err := d.SignSnapshot(s)
				if err != nil {
					b.Fatal(err)
				}
				live, enc = s.LiveBytes(), len(e)
			}
			b.ReportMetric(float64(live), "snapshot-bytes")
			b.ReportMetric(float64(enc), "encoded-bytes")
		})
	}
}
