package instrument

import (
	"context"
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

// realProgN sizes one bench(n) call: tens of milliseconds on this machine.
const realProgN = 40

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

// BenchmarkRealProgram runs the Lua benchmark script on the original and the
// instrumented interpreter in the same run, interleaved, and reports the
// medians and instrumented/plain (the goal is at most 1.03).
func BenchmarkRealProgram(b *testing.B) {
	orig := readFile(b, realProg)
	res := mustInstrument(b, orig, Options{})
	fns := []api.Function{newRealProg(b, orig).ExportedFunction("bench"), newRealProg(b, res.Module).ExportedFunction("bench")}
	ctx := context.Background()
	took := make([][]time.Duration, len(fns))
	stack := make([]uint64, 1)
	var want uint64
	for i := -1; i < b.N; i++ { // i == -1 warms up and checks agreement
		for j, fn := range fns {
			stack[0] = realProgN
			start := time.Now()
			if err := fn.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
			if i < 0 {
				if j == 0 {
					want = stack[0]
				} else if stack[0] != want {
					b.Fatalf("instrumented bench(%d) = %d, plain %d", realProgN, stack[0], want)
				}
				continue
			}
			took[j] = append(took[j], time.Since(start))
		}
	}
	med := make([]float64, len(fns))
	for j := range took {
		slices.Sort(took[j])
		med[j] = float64(took[j][len(took[j])/2].Nanoseconds())
	}
	b.ReportMetric(med[0], "plain-ns/call")
	b.ReportMetric(med[1], "instrumented-ns/call")
	b.ReportMetric(med[1]/med[0], "instrumented/plain")
}
