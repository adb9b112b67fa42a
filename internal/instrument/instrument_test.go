package instrument

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustInstrument(t testing.TB, b []byte, opt Options) *Result {
	t.Helper()
	res, err := Instrument(b, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wasmbin.Parse(res.Module); err != nil {
		t.Fatalf("instrumented module does not parse: %v", err)
	}
	return res
}

// engines are the wazero configurations the host may use.
var engines = []struct {
	name string
	cfg  func() wazero.RuntimeConfig
}{
	{"compiler", wazero.NewRuntimeConfigCompiler},
	{"interpreter", wazero.NewRuntimeConfigInterpreter},
}

func newRuntime(t testing.TB, cfg wazero.RuntimeConfig) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, cfg.WithCoreFeatures(CoreFeatures))
	t.Cleanup(func() { r.Close(ctx) })
	return r
}

func instantiate(t testing.TB, r wazero.Runtime, b []byte, name string) api.Module {
	t.Helper()
	m, err := r.InstantiateWithConfig(context.Background(), b, wazero.NewModuleConfig().WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func call(t testing.TB, m api.Module, fn string, args ...uint64) []uint64 {
	t.Helper()
	out, err := m.ExportedFunction(fn).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	return out
}

func mutable(t testing.TB, m api.Module, name string) api.MutableGlobal {
	t.Helper()
	g, ok := m.ExportedGlobal(name).(api.MutableGlobal)
	if !ok {
		t.Fatalf("export %q is not a mutable global", name)
	}
	return g
}

// envModule exports a mutable i32 global "base" for state.wasm to import.
func envModule(init int32) []byte {
	return wasmbin.Encode([]wasmbin.Section{
		wasmbin.GlobalSection([]wasmbin.Global{{Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true}, Init: wasmbin.ConstI32(init)}}),
		wasmbin.ExportSection([]wasmbin.Export{{Name: "base", Kind: wasmbin.KindGlobal}}),
	})
}

func TestGlobalsReadBackAndRestore(t *testing.T) {
	orig := readFile(t, "testdata/state.wasm")
	res := mustInstrument(t, orig, Options{})
	var idx []uint32
	for _, g := range res.Globals {
		idx = append(idx, g.Index)
		if g.Export != abi.ReservedExportPrefix+"g"+string(rune('0'+g.Index)) {
			t.Errorf("global %d exported as %q", g.Index, g.Export)
		}
	}
	// 0 imported base, 1..4 a b c d, 5 immutable k, 6 exported e, 7 immutable v128.
	if want := []uint32{0, 1, 2, 3, 4, 6}; !equalU32(idx, want) {
		t.Fatalf("mutable globals %v, want %v", idx, want)
	}
	wantTypes := []abi.ValType{abi.I32, abi.I32, abi.I64, abi.F32, abi.F64, abi.I32}
	for i, g := range res.Globals {
		if g.Type != wantTypes[i] {
			t.Errorf("global %d type %v", g.Index, g.Type)
		}
	}
	if res.TablesDirtyExport != "" || res.MemoryMin != 1 || res.MemoryMax != 4 {
		t.Errorf("result %+v", res)
	}
	getter := map[uint32]string{0: "get_base", 1: "get_a", 2: "get_b", 3: "get_c", 4: "get_d", 6: "get_e"}

	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			instantiate(t, r, envModule(10), "env")
			m := instantiate(t, r, res.Module, "guest")
			check := func(when string) {
				for _, g := range res.Globals {
					got := m.ExportedGlobal(g.Export).Get()
					want := call(t, m, getter[g.Index])[0]
					if g.Type == abi.I32 || g.Type == abi.F32 {
						got, want = uint64(uint32(got)), uint64(uint32(want))
					}
					if got != want {
						t.Errorf("%s: global %d: export reads %#x, guest has %#x", when, g.Index, got, want)
					}
				}
			}
			check("initial")
			call(t, m, "step", 5)
			call(t, m, "step", 6)
			check("after two steps")
			if a := int32(m.ExportedGlobal(GlobalExportName(1)).Get()); a != 18 {
				t.Errorf("a = %d, want 18", a)
			}
			if b := int64(m.ExportedGlobal(GlobalExportName(2)).Get()); b != -81 {
				t.Errorf("b = %d, want -81", b)
			}
			if c := api.DecodeF32(m.ExportedGlobal(GlobalExportName(3)).Get()); c != 2.5 {
				t.Errorf("c = %v, want 2.5", c)
			}
			// Restore: writing through the reserved exports is what the
			// guest sees afterwards.
			mutable(t, m, GlobalExportName(1)).Set(api.EncodeI32(-3))
			mutable(t, m, GlobalExportName(2)).Set(api.EncodeI64(math.MinInt64))
			mutable(t, m, GlobalExportName(3)).Set(api.EncodeF32(-0.75))
			mutable(t, m, GlobalExportName(4)).Set(api.EncodeF64(math.Pi))
			mutable(t, m, GlobalExportName(0)).Set(api.EncodeI32(77))
			check("after restore")
			if got := int32(call(t, m, "get_a")[0]); got != -3 {
				t.Errorf("get_a after restore = %d", got)
			}
			if got := api.DecodeF64(call(t, m, "get_d")[0]); got != math.Pi {
				t.Errorf("get_d after restore = %v", got)
			}
		})
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBehavesIdentically(t *testing.T) {
	orig := readFile(t, "testdata/state.wasm")
	res := mustInstrument(t, orig, Options{})
	r := newRuntime(t, wazero.NewRuntimeConfigCompiler())
	instantiate(t, r, envModule(3), "env")
	a := instantiate(t, r, orig, "a")
	b := instantiate(t, r, res.Module, "b")
	for i := uint64(0); i < 20; i++ {
		call(t, a, "step", i)
		call(t, b, "step", i)
	}
	for _, fn := range []string{"get_a", "get_b", "get_c", "get_d", "get_e", "get_base"} {
		if x, y := call(t, a, fn)[0], call(t, b, fn)[0]; x != y {
			t.Errorf("%s: original %#x, instrumented %#x", fn, x, y)
		}
	}
	ma, _ := a.Memory().Read(0, a.Memory().Size())
	mb, _ := b.Memory().Read(0, b.Memory().Size())
	if !bytes.Equal(ma, mb) {
		t.Error("memories differ")
	}

	spin := readFile(t, "testdata/spin.wasm")
	sres := mustInstrument(t, spin, Options{})
	s1 := instantiate(t, r, spin, "s1")
	s2 := instantiate(t, r, sres.Module, "s2")
	for _, n := range []uint64{0, 1, 1000, 123457} {
		if x, y := call(t, s1, "sum", n)[0], call(t, s2, "sum", n)[0]; x != y || x != n*(n-1)/2 && n > 0 {
			t.Errorf("sum(%d): %d vs %d", n, x, y)
		}
	}
	if x, y := call(t, s1, "tree", 10)[0], call(t, s2, "tree", 10)[0]; x != y || x != 1024 {
		t.Errorf("tree(10): %d vs %d", x, y)
	}
}

// runUntilStopped calls fn in a goroutine, checks it is still running after
// a while, sets the stop flag and expects an unreachable trap soon after.
func runUntilStopped(t *testing.T, m api.Module, stopName, fn string, args ...uint64) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction(fn).Call(context.Background(), args...)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("%s returned before the stop flag was set: %v", fn, err)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	mutable(t, m, stopName).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("%s: want an unreachable trap, got %v", fn, err)
		}
		t.Logf("%s stopped %v after the flag was set", fn, time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still running 5s after the stop flag was set", fn)
	}
	// The instance stays usable once the flag is cleared.
	mutable(t, m, stopName).Set(0)
	if got := call(t, m, "sum", 10)[0]; got != 45 {
		t.Fatalf("sum(10) after stop = %d", got)
	}
}

func TestStopFlagPreempts(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/spin.wasm"), Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			if raceEnabled && e.name == "interpreter" {
				t.Skip("the flag write races with the interpreter's read (see race_test.go)")
			}
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "spin")
			t.Run("loop", func(t *testing.T) { runUntilStopped(t, m, res.StopExport, "spin") })
			t.Run("call tree without loops", func(t *testing.T) { runUntilStopped(t, m, res.StopExport, "tree", 62) })
			t.Run("tail calls", func(t *testing.T) { runUntilStopped(t, m, res.StopExport, "tail", 0) })
		})
	}
}

// TestStopLatencyBound: with the flag set, a guest traps within
// YieldMask+1 loop iterations, and short calls that stay below it finish.
func TestStopLatencyBound(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/spin.wasm"), Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "spin")
			mutable(t, m, res.StopExport).Set(1)
			if _, err := m.ExportedFunction("sum").Call(context.Background(), YieldMask+1); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("sum(YieldMask+1) with the flag set: %v", err)
			}
			if _, err := m.ExportedFunction("tree").Call(context.Background(), 15); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("tree(15) (65535 calls) with the flag set: %v", err)
			}
			mutable(t, m, res.StopExport).Set(0)
			if got := call(t, m, "sum", 100)[0]; got != 4950 {
				t.Fatalf("sum(100) = %d", got)
			}
		})
	}
}

func TestMemoryCap(t *testing.T) {
	grow := readFile(t, "testdata/grow.wasm")
	res := mustInstrument(t, grow, Options{MaxMemoryPages: 4})
	if res.MemoryMin != 1 || res.MemoryMax != 4 {
		t.Fatalf("limits %d..%d", res.MemoryMin, res.MemoryMax)
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "grow")
			for i, want := range []int32{1, 2, 3, -1, -1} {
				if got := int32(call(t, m, "grow", 1)[0]); got != want {
					t.Fatalf("grow #%d = %d, want %d", i, got, want)
				}
			}
			if got := call(t, m, "size")[0]; got != 4 {
				t.Fatalf("size = %d", got)
			}
			if got := int32(call(t, m, "grow", 0)[0]); got != 4 {
				t.Fatalf("grow(0) at the cap = %d", got)
			}
			m2 := instantiate(t, r, res.Module, "grow2")
			if got := int32(call(t, m2, "grow", 3)[0]); got != 1 {
				t.Fatalf("grow(3) to exactly the cap = %d", got)
			}
			if got := int32(call(t, m2, "grow", 1)[0]); got != -1 {
				t.Fatalf("grow past the cap = %d", got)
			}
		})
	}

	withMem := func(l wasmbin.Limits) []byte {
		return wasmbin.Encode([]wasmbin.Section{wasmbin.MemorySection([]wasmbin.Limits{l})})
	}
	cases := []struct {
		l        wasmbin.Limits
		cap      uint32
		min, max uint32
	}{
		{wasmbin.Limits{Min: 1}, 0, 1, MaxPages},
		{wasmbin.Limits{Min: 1, Max: 10, HasMax: true}, 4, 1, 4},
		{wasmbin.Limits{Min: 1, Max: 2, HasMax: true}, 4, 1, 2},
		{wasmbin.Limits{Min: 4, Max: 9, HasMax: true}, 4, 4, 4},
		{wasmbin.Limits{Min: 1, Max: 10, HasMax: true}, 0, 1, 10},
		{wasmbin.Limits{Min: 1}, 1 << 20, 1, MaxPages},
	}
	for _, c := range cases {
		res := mustInstrument(t, withMem(c.l), Options{MaxMemoryPages: c.cap})
		m, _ := wasmbin.Parse(res.Module)
		got := m.Memories[0]
		if res.MemoryMin != c.min || res.MemoryMax != c.max || uint32(got.Min) != c.min || !got.HasMax && c.max != MaxPages || got.HasMax && uint32(got.Max) != c.max {
			t.Errorf("%+v cap %d: result %d..%d, module %+v", c.l, c.cap, res.MemoryMin, res.MemoryMax, got)
		}
	}
	_, err := Instrument(withMem(wasmbin.Limits{Min: 5}), Options{MaxMemoryPages: 4})
	var le *MemoryLimitError
	if !errors.Is(err, ErrMemoryLimit) || !errors.As(err, &le) || le.ModuleMin != 5 || le.Limit != 4 ||
		!strings.Contains(err.Error(), "5 pages") || !strings.Contains(err.Error(), "4 pages") {
		t.Fatalf("min above cap: %v", err)
	}
	if res, err := Instrument(wasmbin.Encode(nil), Options{MaxMemoryPages: 4}); err != nil || res.MemoryMin != 0 || res.MemoryMax != 0 {
		t.Fatalf("module without memory: %+v %v", res, err)
	}
}

func TestTablesDirty(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/table.wasm"), Options{})
	if res.TablesDirtyExport != TablesDirtyExport {
		t.Fatalf("TablesDirtyExport = %q", res.TablesDirtyExport)
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "table")
			flag := mutable(t, m, res.TablesDirtyExport)
			if flag.Get() != 0 {
				t.Fatal("dirty right after instantiation")
			}
			call(t, m, "read")
			if flag.Get() != 0 {
				t.Fatal("table.size set the dirty flag")
			}
			for _, fn := range []string{"set", "grow", "init", "drop"} {
				call(t, m, fn)
				if flag.Get() != 1 {
					t.Errorf("%s did not set the dirty flag", fn)
				}
				flag.Set(0)
			}
			if got := call(t, m, "call", 1)[0]; got != 5 {
				t.Errorf("call_indirect after table.set = %d", got)
			}
		})
	}
	spin := mustInstrument(t, readFile(t, "testdata/spin.wasm"), Options{})
	if spin.TablesDirtyExport != "" {
		t.Errorf("module without table mutations: TablesDirtyExport = %q", spin.TablesDirtyExport)
	}
}

func TestUnsupported(t *testing.T) {
	global := func(t wasmbin.ValType, mut bool) []byte {
		return wasmbin.Encode([]wasmbin.Section{wasmbin.GlobalSection([]wasmbin.Global{{Type: wasmbin.GlobalType{Type: t, Mutable: mut}, Init: wasmbin.ConstZero(t)}})})
	}
	for _, vt := range []wasmbin.ValType{wasmbin.V128, wasmbin.FuncRef, wasmbin.ExternRef} {
		if _, err := Instrument(global(vt, true), Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), abi.ValType(vt).String()) {
			t.Errorf("mutable %v global: %v", abi.ValType(vt), err)
		}
		if _, err := Instrument(global(vt, false), Options{}); err != nil {
			t.Errorf("immutable %v global: %v", abi.ValType(vt), err)
		}
	}
	cases := map[string][]byte{
		"reserved export": wasmbin.Encode([]wasmbin.Section{
			wasmbin.GlobalSection([]wasmbin.Global{{Type: wasmbin.GlobalType{Type: wasmbin.I32}, Init: wasmbin.ConstI32(0)}}),
			wasmbin.ExportSection([]wasmbin.Export{{Name: StopExport, Kind: wasmbin.KindGlobal}}),
		}),
		"imported memory": wasmbin.Encode([]wasmbin.Section{wasmbin.ImportSection([]wasmbin.Import{{Module: "env", Name: "m", Kind: wasmbin.KindMemory, Memory: wasmbin.Limits{Min: 1}}})}),
		"two memories":    wasmbin.Encode([]wasmbin.Section{wasmbin.MemorySection([]wasmbin.Limits{{Min: 1}, {Min: 1}})}),
		"memory64":        wasmbin.Encode([]wasmbin.Section{wasmbin.MemorySection([]wasmbin.Limits{{Min: 1, Memory64: true}})}),
		"shared memory":   wasmbin.Encode([]wasmbin.Section{wasmbin.MemorySection([]wasmbin.Limits{{Min: 1, Max: 1, HasMax: true, Shared: true}})}),
	}
	for name, b := range cases {
		if _, err := Instrument(b, Options{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Instrument([]byte("nope"), Options{}); !errors.Is(err, wasmbin.ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
}

func TestCustomSections(t *testing.T) {
	b := wasmbin.Encode([]wasmbin.Section{
		wasmbin.CustomSection("producers", []byte{0}),
		wasmbin.MemorySection([]wasmbin.Limits{{Min: 1}}),
		wasmbin.CustomSection("name", []byte{0, 1, 0}),
		wasmbin.CustomSection("other", []byte{9, 9}),
	})
	res := mustInstrument(t, b, Options{})
	m, _ := wasmbin.Parse(res.Module)
	var names []string
	for _, c := range m.Customs {
		names = append(names, c.Name)
	}
	// The name section stays (see TestNameSectionKept).
	if strings.Join(names, ",") != "producers,name,other" {
		t.Errorf("custom sections kept: %v", names)
	}
}

// TestEveryTestModule instruments every committed test module (and the
// example daemons of plugins/examples) and checks
// that wazero compiles the result, that exports and imports are preserved,
// and that every function entry and loop got its check.
func TestEveryTestModule(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../abi/testdata/*.wasm")
	files = append(files, more...)
	// The example daemons in every guest language, when present.
	examples, _ := filepath.Glob("../../plugins/examples/*/*.wasm")
	for _, f := range examples {
		if !strings.Contains(f, "/testdata/") {
			files = append(files, f)
		}
	}
	r := newRuntime(t, wazero.NewRuntimeConfigCompiler())
	for _, f := range files {
		b := readFile(t, f)
		res, err := Instrument(b, Options{MaxMemoryPages: 4096})
		if err != nil {
			if errors.Is(err, ErrUnsupported) && strings.Contains(f, "guest_bad") {
				continue
			}
			t.Errorf("%s: %v", f, err)
			continue
		}
		orig, _ := wasmbin.Parse(b)
		inst, err := wasmbin.Parse(res.Module)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := r.CompileModule(context.Background(), res.Module); err != nil {
			t.Errorf("%s: wazero refuses the instrumented module: %v", f, err)
		}
		if len(inst.Imports) != len(orig.Imports) || len(inst.Exports) < len(orig.Exports) {
			t.Errorf("%s: imports/exports/functions changed", f)
		}
		for i, e := range orig.Exports {
			if inst.Exports[i] != e {
				t.Errorf("%s: export %q changed", f, e.Name)
			}
		}
		// Loop-free functions with an entry check each get a $reenter;
		// unchecked ones (see bounded.go) get neither.
		unchecked, _ := uncheckedFuncs(orig, MaxUncheckedCost)
		loopFree := 0
		for i, c := range orig.Codes {
			if !hasLoop(c.Body) && !unchecked[i] {
				loopFree++
			}
		}
		charges := 0
		charge := orig.NumFuncs() + 1 + uint32(loopFree)
		if hasBulk(orig) {
			charges = 1
		}
		helpers := 0 // $fill and $copy
		if hasChunked(orig) {
			helpers = 2
		}
		if len(inst.Codes) != len(orig.Codes)+1+loopFree+charges+helpers {
			t.Errorf("%s: %d functions, want %d + $yield + one $reenter per loop-free function (%d) + $charge (%d) + $fill, $copy (%d)", f, len(inst.Codes), len(orig.Codes), loopFree, charges, helpers)
			continue
		}
		yield, dirty := orig.NumFuncs(), orig.NumGlobals()+2
		next := yield + 1 // the next $reenter
		for i, c := range inst.Codes[:len(orig.Codes)] {
			loops, calls, reenters := 0, 0, 0
			charged := false
			var prev, prev2, beforeMark wasmbin.Instr
			for off := 0; off < len(c.Body); {
				in, _ := wasmbin.DecodeInstr(c.Body, off)
				if in.Op == wasmbin.OpLoop {
					loops++
				}
				if in.Op == wasmbin.OpCall && in.Index == yield {
					calls++
				}
				if in.Op == wasmbin.OpReturnCall && in.Index == next {
					reenters++
				}
				if in.Op == wasmbin.OpCall && in.Index == charge {
					charged = true
				}
				// The count's constant, if any, is before the dirty mark.
				count := prev
				if prev.Op == wasmbin.OpGlobalSet && prev.Index == dirty {
					count = beforeMark
				}
				if shift, ok := bulkShift(in); ok && !smallConstCount(c.Body, count, shift) {
					if !charged {
						t.Errorf("%s: function %d: bulk instruction at %d not charged", f, i, in.Offset)
					}
					charged = false
				}
				if in.IsTableMutation() && !(prev.Op == wasmbin.OpGlobalSet && prev.Index == dirty) {
					t.Errorf("%s: function %d: table mutation without the dirty mark", f, i)
				}
				beforeMark, prev2, prev = prev2, prev, in
				off = in.End
			}
			if unchecked[i] {
				first, _ := wasmbin.DecodeInstr(c.Body, 0)
				if loops != 0 || calls != 0 || reenters != 0 || first.Op == wasmbin.OpGlobalGet && first.Index == orig.NumGlobals()+1 {
					t.Errorf("%s: unchecked function %d: %d loops, %d yield points, %d entry checks", f, i, loops, calls, reenters)
				}
				continue
			}
			// One yield point per checked loop header and one at an entry
			// that tests (see "Loop headers that need no check of their own").
			plan := planLoops(orig.Codes[i].Body)
			widenPlan(orig, unchecked, orig.Codes[i].Body, &plan)
			want := loops - len(plan.skip) + 1
			if plan.deferEntry {
				want--
			}
			if loops > 0 && (calls != want || reenters != 0) || loops == 0 && (calls != 0 || reenters != 1) {
				t.Errorf("%s: function %d: %d yield points for %d loops, %d entry checks", f, i, calls, loops, reenters)
			}
			if loops > 0 {
				continue
			}
			// $reenter_i yields and tail-calls function i.
			k := int(next - orig.ImportedFuncs)
			re := inst.Codes[k].Body
			first, _ := wasmbin.DecodeInstr(re, 0)
			if first.Op != wasmbin.OpCall || first.Index != yield || inst.Funcs[k] != orig.Funcs[i] {
				t.Errorf("%s: $reenter of function %d does not start with call $yield or has another type", f, i)
			}
			next++
		}
	}
}
