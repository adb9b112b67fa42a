package instrument

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// checkUnchecked is the oracle of uncheckedFuncs, recomputed the slow way:
// no unchecked function has a loop, none is reachable by call_indirect or
// from the host (so a call_indirect in one enters a checked function), the unchecked functions' direct calls
// among themselves form no cycle, and a call of one runs at most
// MaxUncheckedCost instructions before it returns or enters a checked
// function.
func checkUnchecked(t *testing.T, m *wasmbin.Module, unchecked []bool) {
	t.Helper()
	if len(unchecked) != len(m.Codes) {
		t.Fatalf("%d verdicts for %d functions", len(unchecked), len(m.Codes))
	}
	reachable := map[uint32]bool{}
	for _, e := range m.Exports {
		if e.Kind == wasmbin.KindFunc {
			reachable[e.Index] = true
		}
	}
	for _, e := range m.Elements {
		if !elemFuncs(e.Raw, func(f uint32) { reachable[f] = true }) {
			t.Fatalf("element segment % x does not decode", e.Raw)
		}
	}
	for _, c := range append(append([][]byte(nil), globalInits(m)...), bodies(m)...) {
		for off := 0; off < len(c); {
			in, _ := wasmbin.DecodeInstr(c, off)
			if in.Op == wasmbin.OpRefFunc {
				reachable[in.Index] = true
			}
			off = in.End
		}
	}
	const visiting = ^uint64(0)
	cost := map[uint32]uint64{}
	var walk func(i uint32) uint64
	walk = func(i uint32) uint64 {
		switch c, ok := cost[i]; {
		case ok && c == visiting:
			t.Fatalf("unchecked function %d calls itself through unchecked functions", int(m.ImportedFuncs+i))
		case ok:
			return c
		}
		cost[i] = visiting
		var c uint64
		body := m.Codes[i].Body
		for off := 0; off < len(body); {
			in, _ := wasmbin.DecodeInstr(body, off)
			c++
			switch in.Op {
			case wasmbin.OpLoop:
				t.Fatalf("unchecked function %d has %#x at %d", int(m.ImportedFuncs+i), in.Op, in.Offset)
			case wasmbin.OpCall, wasmbin.OpReturnCall:
				if g := in.Index - m.ImportedFuncs; in.Index >= m.ImportedFuncs && unchecked[g] {
					c += walk(g)
				}
			}
			off = in.End
		}
		cost[i] = c
		return c
	}
	for i, u := range unchecked {
		if !u {
			continue
		}
		idx := m.ImportedFuncs + uint32(i)
		if reachable[idx] {
			t.Fatalf("unchecked function %d is exported or in a table", idx)
		}
		if c := walk(uint32(i)); c > MaxUncheckedCost {
			t.Fatalf("unchecked function %d costs %d > %d", idx, c, MaxUncheckedCost)
		}
	}
}

func globalInits(m *wasmbin.Module) [][]byte {
	var out [][]byte
	for _, g := range m.Globals {
		out = append(out, g.Init)
	}
	return out
}

func bodies(m *wasmbin.Module) [][]byte {
	var out [][]byte
	for _, c := range m.Codes {
		out = append(out, c.Body)
	}
	return out
}

// TestUncheckedFuncs: on runaways without loops, the functions that keep
// their entry check are the ones the bound needs (each recursion keeps one,
// the doubling DAG keeps a level every few), and small leaves lose it.
func TestUncheckedFuncs(t *testing.T) {
	m, err := wasmbin.Parse(readFile(t, "testdata/unchecked.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := uncheckedFuncs(m, MaxUncheckedCost)
	checkUnchecked(t, m, u)
	// Function indices in unchecked.wat: 0 spin, 1 $rec, 2 direct, 3 $even,
	// 4 $odd, 5 mutual, 6 $ind, 7 indirect, 8 dag, 9.. $f1..$f48, then sum.
	if u[1] || u[3] && u[4] || u[6] {
		t.Errorf("a recursion lost all its entry checks: rec %v, even %v, odd %v, ind %v", !u[1], !u[3], !u[4], !u[6])
	}
	for _, i := range []int{0, 2, 5, 7, 8} {
		if u[i] {
			t.Errorf("exported function %d unchecked", i)
		}
	}
	const f1, levels = 9, 48
	if !u[f1+levels-1] {
		t.Error("the DAG's leaf kept its entry check")
	}
	gap := 0
	for k := levels - 1; k >= 0; k-- {
		if gap++; !u[f1+k] {
			gap = 0
		}
		// Each level costs twice the one below plus a few: the levels
		// between two checked ones stay below log2(MaxUncheckedCost).
		if gap > 10 {
			t.Fatalf("DAG levels %d..%d all unchecked", k+1, k+gap)
		}
	}
	n := 0
	for _, x := range u {
		if x {
			n++
		}
	}
	if n < levels/2 {
		t.Errorf("only %d of %d functions unchecked", n, len(u))
	}
}

// TestUncheckedFuncsOnEveryModule runs the oracle on every module the tests
// have: the Go guest, the Lua interpreter and the example daemons in each
// language (but Go's, which are built as the Go guest is, and large).
func TestUncheckedFuncsOnEveryModule(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../abi/testdata/*.wasm")
	examples, _ := filepath.Glob("../../plugins/examples/*/*.wasm")
	for _, f := range append(append(append(files, more...), examples...), realProg) {
		if strings.HasSuffix(f, "-go.wasm") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := wasmbin.Parse(b)
		if err != nil {
			continue // the bad guests of abi/testdata
		}
		t.Run(filepath.Base(f), func(t *testing.T) { checkUnchecked(t, m, first(uncheckedFuncs(m, MaxUncheckedCost))) })
	}
}

// FuzzUncheckedFuncs: for whatever Parse accepts, the verdicts keep the
// oracle's invariants.
func FuzzUncheckedFuncs(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) <= 64<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wasmbin.Parse(b)
		if err != nil {
			return
		}
		checkUnchecked(t, m, first(uncheckedFuncs(m, MaxUncheckedCost)))
	})
}

// TestUncheckedRunawaysStop: every runaway of unchecked.wasm, recursions
// direct, mutual and through call_indirect and the doubling DAG, is stopped
// by the flag while it runs, and with the flag already set it traps long
// before it could finish.
func TestUncheckedRunawaysStop(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/unchecked.wasm"), Options{})
	runaways := []struct {
		fn   string
		args []uint64
	}{{"spin", nil}, {"direct", []uint64{62}}, {"mutual", []uint64{62}}, {"indirect", []uint64{62}}, {"dag", nil}}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			if raceEnabled && e.name == "interpreter" {
				t.Skip("the flag write races with the interpreter's read (see race_test.go)")
			}
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "unchecked")
			for _, w := range runaways {
				t.Run(w.fn, func(t *testing.T) { runUntilStopped(t, m, res.StopExport, w.fn, w.args...) })
			}
			mutable(t, m, res.StopExport).Set(1)
			for _, w := range runaways {
				if _, err := m.ExportedFunction(w.fn).Call(context.Background(), w.args...); err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Errorf("%s with the flag set: %v", w.fn, err)
				}
			}
		})
	}
}

func first[T, U any](t T, _ U) T { return t }

// TestUncheckedStopBound: with the flag set, each runaway of unchecked.wasm
// traps within YieldMask+1 counts, and a count stands for one checked call
// or at most about WeightUnit (256) instructions of unchecked ones (see the
// count weights in bounded.go). Every call there runs at least 5
// instructions, so at most (YieldMask+1)*256/5 calls run before the trap,
// however few of them count (without the weights the DAG makes about
// (YieldMask+1)*256/4; with every function checked, YieldMask+1). The calls
// are counted by the guest itself, in its global $n.
func TestUncheckedStopBound(t *testing.T) {
	orig := readFile(t, "testdata/unchecked.wasm")
	for _, variant := range []struct {
		name string
		opt  Options
	}{{"default", Options{}}, {"allchecked", Options{uncheckedCost: -1}}} {
		res := mustInstrument(t, orig, variant.opt)
		r := newRuntime(t, engines[0].cfg())
		m := instantiate(t, r, res.Module, "unchecked")
		mutable(t, m, res.StopExport).Set(1)
		calls := mutable(t, m, GlobalExportName(0))
		for _, fn := range []string{"direct", "mutual", "indirect", "dag"} {
			calls.Set(0)
			args := []uint64{62}
			if fn == "dag" {
				args = nil
			}
			if _, err := m.ExportedFunction(fn).Call(context.Background(), args...); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("%s %s with the flag set: %v", variant.name, fn, err)
			}
			n := int(api.DecodeI32(calls.Get()))
			t.Logf("%s %s: %d calls before the trap", variant.name, fn, n)
			if limit := (YieldMask + 1) * 256 / 5; n <= 0 || n > limit {
				t.Errorf("%s %s: %d calls before the trap, want at most %d", variant.name, fn, n, limit)
			}
		}
	}
}

// TestWeightPaths: a function's weight follows its costliest path from one
// count point to the next, not the sum of its call sites: the arms of an
// if count as alternatives, a loop's back edge and header end a path, code
// after an unconditional branch is not on the path.
func TestWeightPaths(t *testing.T) {
	leaf := append(bytes.Repeat([]byte{wasmbin.OpNop}, 99), wasmbin.OpEnd) // cost 100
	call0 := []byte{wasmbin.OpCall, 0}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name  string
		body  []byte
		calls int // leaf calls on the costliest path
	}{
		{"straight", cat(call0, call0, call0, []byte{wasmbin.OpEnd}), 3},
		{"if else", cat([]byte{wasmbin.OpI32Const, 0, wasmbin.OpIf, 0x40}, call0, []byte{wasmbin.OpElse}, call0, call0, []byte{wasmbin.OpEnd, wasmbin.OpEnd}), 2},
		{"if without else", cat(call0, []byte{wasmbin.OpI32Const, 0, wasmbin.OpIf, 0x40}, call0, []byte{wasmbin.OpEnd}, call0, []byte{wasmbin.OpEnd}), 3},
		{"loop", cat(call0, []byte{wasmbin.OpLoop, 0x40}, call0, call0, []byte{wasmbin.OpBr, 0, wasmbin.OpEnd}, call0, []byte{wasmbin.OpEnd}), 2},
		{"dead code", cat([]byte{wasmbin.OpBlock, 0x40}, call0, []byte{wasmbin.OpBr, 0}, call0, call0, call0, []byte{wasmbin.OpEnd}, call0, []byte{wasmbin.OpEnd}), 2},
		{"branch out", cat([]byte{wasmbin.OpBlock, 0x40}, call0, call0, []byte{wasmbin.OpI32Const, 0, wasmbin.OpBrIf, 0}, call0, []byte{wasmbin.OpReturn, wasmbin.OpEnd}, call0, []byte{wasmbin.OpEnd}), 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := wasmbin.Encode([]wasmbin.Section{
				wasmbin.TypeSection([]wasmbin.FuncType{{}}),
				wasmbin.FunctionSection([]uint32{0, 0}),
				wasmbin.ExportSection([]wasmbin.Export{{Name: "f", Kind: wasmbin.KindFunc, Index: 1}}),
				wasmbin.CodeSection([]wasmbin.Code{{Body: leaf}, {Body: c.body}}),
			})
			m, err := wasmbin.Parse(bin)
			if err != nil {
				t.Fatal(err)
			}
			u, cost := uncheckedFuncs(m, MaxUncheckedCost)
			if !u[0] || u[1] || cost[0] != 100 {
				t.Fatalf("verdicts %v, costs %v", u, cost)
			}
			if got, want := weight(m, u, cost, m.Codes[1].Body, 10), uint32(1+10*c.calls); got != want {
				t.Errorf("weight %d, want %d (%d leaf calls)", got, want, c.calls)
			}
		})
	}
}
