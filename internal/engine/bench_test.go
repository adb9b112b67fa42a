package engine_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Per-event deliver cost. Compare each wasm row with BenchmarkDeliverNative
// (the same work as plain Go) and BenchmarkDeliverRawWazero (the engine floor:
// an uninstrumented module called directly, no chain, no journal).

func benchDeliver(b *testing.B, module []byte, payload []byte) {
	rt := readyRuntime(b, map[string][]byte{"k": module})
	d := spawn(b, rt, "k", engine.SpawnOptions{})
	ctx := context.Background()
	var out engine.Outputs
	ev := engine.Event{Sender: 1, Payload: payload}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i)
		if err := d.DeliverInto(ctx, ev, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliverWATCounter(b *testing.B) {
	benchDeliver(b, example(b, "counter-wat", "counter-wat.wasm"), []byte("x"))
}

func BenchmarkDeliverWATEcho64(b *testing.B) {
	benchDeliver(b, example(b, "echo-wat", "echo-wat.wasm"), make([]byte, 64))
}

func BenchmarkDeliverGoCounter(b *testing.B) {
	benchDeliver(b, example(b, "counter-go", "counter-go.wasm"), []byte("x"))
}

func BenchmarkDeliverGoEcho64(b *testing.B) {
	benchDeliver(b, example(b, "echo-go", "echo-go.wasm"), make([]byte, 64))
}

// BenchmarkDeliverWATNoOutput is the host's own per-event overhead: an
// event that emits nothing, so no chain link is hashed.
func BenchmarkDeliverWATNoOutput(b *testing.B) {
	benchDeliver(b, fixture(b, "ballast.wasm"), []byte{0, 0, 0, 0})
}

// BenchmarkChainHash64 is the SHA-256 chain link of one 64-byte output:
// the part of an emitting event's cost that is the causal chain.
func BenchmarkChainHash64(b *testing.B) {
	var h chain.Hasher
	p := make([]byte, 64)
	l := chain.Link{Origin: 1}
	for i := 0; i < b.N; i++ {
		l.Parent = h.Hash(l, p)
	}
}

// BenchmarkDeliverNative is the baseline: the counter's work in plain Go.
func BenchmarkDeliverNative(b *testing.B) {
	var count uint64
	buf := make([]byte, 0, 64)
	in := make([]byte, 64)
	payload := []byte("x")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		copy(in, payload)
		count++
		buf = strconv.AppendUint(buf[:0], count, 10)
	}
	_ = buf
}

// BenchmarkDeliverRawWazero is the engine floor: the uninstrumented
// counter-wat called through wazero directly with a trivial emit.
func BenchmarkDeliverRawWazero(b *testing.B) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer r.Close(ctx)
	var emitted int
	_, err := r.NewHostModuleBuilder("wasmesh").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
			p, _ := m.Memory().Read(uint32(s[0]), uint32(s[1]))
			emitted += len(p)
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).Export("emit").Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, example(b, "counter-wat", "counter-wat.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	input, process := mod.ExportedFunction("wasmesh_input"), mod.ExportedFunction("wasmesh_process")
	mem := mod.Memory()
	stack := make([]uint64, 4)
	payload := []byte("x")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stack[0] = 1
		input.CallWithStack(ctx, stack)
		ptr := uint32(stack[0])
		mem.Write(ptr, payload)
		stack[0], stack[1], stack[2], stack[3] = 1, uint64(i), uint64(ptr), 1
		if err := process.CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSpawn(b *testing.B, module []byte) {
	rt := readyRuntime(b, map[string][]byte{"k": module})
	ctx := context.Background()
	ids := make([]identity.Identity, b.N)
	for i := range ids {
		ids[i] = newID(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := rt.Spawn(ctx, "k", ids[i], engine.SpawnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		rt.Stop(ctx, d.Origin())
		b.StartTimer()
	}
}

func BenchmarkSpawnWAT(b *testing.B) { benchSpawn(b, example(b, "counter-wat", "counter-wat.wasm")) }
func BenchmarkSpawnGo(b *testing.B)  { benchSpawn(b, example(b, "counter-go", "counter-go.wasm")) }

// Snapshot capture and restore of live pages. The echo guest grows memory
// to fit its input, so one large event makes n MiB of non-zero pages.
func liveDaemon(b *testing.B, rt *engine.Runtime, id identity.Identity, mib int) *engine.Daemon {
	d, err := rt.Spawn(context.Background(), "ballast", id, engine.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(mib<<20))
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: n[:]}); err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkSnapshotCapture16MiB(b *testing.B) {
	rt := readyRuntime(b, map[string][]byte{"ballast": fixture(b, "ballast.wasm")})
	d := liveDaemon(b, rt, newID(b), 16)
	s, _ := d.Snapshot(context.Background())
	b.SetBytes(int64(len(s.Pages)) * snapshot.PageSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotRestore16MiB(b *testing.B) {
	rt := readyRuntime(b, map[string][]byte{"ballast": fixture(b, "ballast.wasm")})
	id := newID(b)
	d := liveDaemon(b, rt, id, 16)
	s, _ := d.Snapshot(context.Background())
	rt.Stop(context.Background(), d.Origin())
	b.SetBytes(int64(len(s.Pages)) * snapshot.PageSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := rt.SpawnFromSnapshot(context.Background(), "ballast", id, s, engine.SpawnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		rt.Stop(context.Background(), r.Origin())
		b.StartTimer()
	}
}

// BenchmarkCopyBaseline is the memory-bandwidth baseline for the two above.
func BenchmarkCopyBaseline16MiB(b *testing.B) {
	src := make([]byte, 16<<20)
	for i := range src {
		src[i] = byte(i | 1)
	}
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		copy(dst, src)
	}
}

// benchDeliverOwned is benchDeliver through Deliver, whose outputs the
// caller owns: its cost over the DeliverInto row of the same module is what
// owning the outputs costs.
func benchDeliverOwned(b *testing.B, module []byte, payload []byte) {
	rt := readyRuntime(b, map[string][]byte{"k": module})
	d := spawn(b, rt, "k", engine.SpawnOptions{})
	ctx := context.Background()
	ev := engine.Event{Sender: 1, Payload: payload}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i)
		if _, err := d.Deliver(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliverOwnedWATNoOutput(b *testing.B) {
	benchDeliverOwned(b, fixture(b, "ballast.wasm"), []byte{0, 0, 0, 0})
}

func BenchmarkDeliverOwnedWATCounter(b *testing.B) {
	benchDeliverOwned(b, example(b, "counter-wat", "counter-wat.wasm"), []byte("x"))
}

func BenchmarkDeliverOwnedWATEcho64(b *testing.B) {
	benchDeliverOwned(b, example(b, "echo-wat", "echo-wat.wasm"), make([]byte, 64))
}

// BenchmarkDeliverParallelWATNoOutput runs one daemon per goroutine: what
// daemons on one runtime share per event (the watchdog, the output pool)
// shows up as the gap to GOMAXPROCS × the serial row.
func BenchmarkDeliverParallelWATNoOutput(b *testing.B) {
	rt := readyRuntime(b, map[string][]byte{"k": fixture(b, "ballast.wasm")})
	ctx := context.Background()
	var ds []*engine.Daemon
	for i := 0; i < 64; i++ {
		ds = append(ds, spawn(b, rt, "k", engine.SpawnOptions{}))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := ds[int(next.Add(1)-1)%len(ds)]
		ev := engine.Event{Sender: 1, Payload: []byte{0, 0, 0, 0}}
		for pb.Next() {
			ev.Seq++
			if _, err := d.Deliver(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
