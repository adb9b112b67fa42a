package instrument

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// realProg is the Lua 5.4 interpreter built with clang for wasm32-wasi (see
// its README): a program built elsewhere, with the shapes real guests have
// (an interpreter loop, many small C functions, malloc), where the
// synthetic loops of spin.wasm say little.
const realProg = "../../tests/testdata/realprog/lua/lua.wasm"

// realProgN sizes one bench(n) call: a few milliseconds on this machine,
// short enough that the two calls of a pair see about the same load.
const realProgN = 8

// newRealProg instantiates bin (lua.wasm or its derived module) in a runtime
// of its own with WASI, and runs the reactor's initializer.
func newRealProg(t testing.TB, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfigCompiler())
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	m, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRealProgram: the derived Lua interpreter computes what the original
// does, and a Lua script that never ends is stopped by the flag.
func TestRealProgram(t *testing.T) {
	orig := readFile(t, realProg)
	res := mustInstrument(t, orig, Options{})
	plain, inst := newRealProg(t, orig), newRealProg(t, res.Module)
	for _, n := range []uint64{0, 1, 3} {
		want, got := call(t, plain, "bench", n)[0], call(t, inst, "bench", n)[0]
		if int32(want) <= 0 || got != want {
			t.Fatalf("bench(%d): instrumented %d, plain %d", n, int32(got), int32(want))
		}
	}
	runUntilStoppedLua(t, inst, res.StopExport)
	if got, want := call(t, inst, "bench", 2)[0], call(t, plain, "bench", 2)[0]; got != want {
		t.Fatalf("bench(2) after the stop: %d, want %d", got, want)
	}
}

// runUntilStoppedLua runs bench(-1), Lua's `while true do end`, sets the
// stop flag once it has run a while and expects the unreachable trap.
func runUntilStoppedLua(t *testing.T, m api.Module, stop string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction("bench").Call(context.Background(), api.EncodeI32(-1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("bench(-1) returned before the stop flag was set: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	mutable(t, m, stop).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("bench(-1): want an unreachable trap, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bench(-1) still running 5s after the stop flag was set")
	}
	mutable(t, m, stop).Set(0)
}

// realProgCopies is how many times each side is compiled: where wazero puts
// the machine code moves one copy's speed by up to ±5% (seen as the same
// build measuring 1.03 in one process and 1.11 in the next), so each side
// is several copies, used in turn.
const realProgCopies = 4

// BenchmarkRealProgram runs the Lua benchmark script on the original
// interpreter and on derived ones in the same run and reports each derived
// one's time over the original's (the goal is at most 1.03 for
// "instrumented/plain"; "allchecked/plain" is the derivation with every
// function checked, byte for byte what Instrument derived before functions
// went without entry checks; "everyloop/plain" the derivation that checks
// every loop header and tests at every entry; "noflow/plain" the one
// whose loop counts stay in each function, without "The count across
// calls"). Each
// iteration calls every side once, back to back, on copy i%realProgCopies
// of each, timed by the calling thread's CPU time (see threadTime), and a
// ratio is the median over iterations of that iteration's ratio: the calls
// of one iteration see about the same load from the machine's other
// tenants, which the medians of each side alone (also reported) do not.
func BenchmarkRealProgram(b *testing.B) {
	orig := readFile(b, realProg)
	variants := []struct {
		name string
		opt  Options
	}{{"instrumented", Options{}}, {"allchecked", Options{uncheckedCost: -1}}, {"everyloop", Options{checkEveryLoop: true}}, {"noflow", Options{noCountFlow: true}}}
	sides := make([][realProgCopies]api.Function, 1+len(variants))
	for c := 0; c < realProgCopies; c++ {
		sides[0][c] = newRealProg(b, orig).ExportedFunction("bench")
		for v, vv := range variants {
			sides[1+v][c] = newRealProg(b, mustInstrument(b, orig, vv.opt).Module).ExportedFunction("bench")
		}
	}
	ctx := context.Background()
	stack := make([]uint64, 1)
	run := func(fn api.Function) time.Duration {
		stack[0] = realProgN
		start := threadTime()
		if err := fn.CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
		return threadTime() - start
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var want uint64
	for s := range sides { // warm up and agree
		for _, fn := range sides[s] {
			run(fn)
			if s == 0 && want == 0 {
				want = stack[0]
			} else if stack[0] != want {
				b.Fatalf("side %d: bench(%d) = %d, want %d", s, realProgN, stack[0], want)
			}
		}
	}
	took := make([][]time.Duration, len(sides))
	ratios := make([][]float64, len(sides))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := i % realProgCopies
		// Rotate which side goes first, so none always runs right after
		// another's allocations.
		first := (i / realProgCopies) % len(sides)
		for k := range sides {
			s := (first + k) % len(sides)
			took[s] = append(took[s], run(sides[s][c]))
			if stack[0] != want {
				b.Fatalf("side %d: bench(%d) = %d, want %d", s, realProgN, stack[0], want)
			}
		}
		for s := 1; s < len(sides); s++ {
			ratios[s] = append(ratios[s], float64(took[s][i])/float64(took[0][i]))
		}
	}
	b.StopTimer()
	for s := range sides {
		name := "plain"
		if s > 0 {
			name = variants[s-1].name
			slices.Sort(ratios[s])
			b.ReportMetric(ratios[s][len(ratios[s])/2], name+"/plain")
		}
		slices.Sort(took[s])
		b.ReportMetric(float64(took[s][len(took[s])/2].Nanoseconds()), name+"-cpu-ns/call")
	}
}
