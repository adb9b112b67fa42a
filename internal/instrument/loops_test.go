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

// TestPlanLoops: only the last loop header of a straight run checks, and
// the entry of a function that makes calls defers its test only to a loop
// header its straight run reaches;
// a branch, a call or a bulk instruction between two headers keeps both.
func TestPlanLoops(t *testing.T) {
	const (
		loop  = wasmbin.OpLoop
		block = wasmbin.OpBlock
		end   = wasmbin.OpEnd
		empty = 0x40
	)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	b := func(bs ...byte) []byte { return bs }
	for _, c := range []struct {
		name       string
		body       []byte
		skip       []int
		deferEntry bool
	}{
		{"one loop at entry", b(loop, empty, end, end), nil, true},
		{"back to back", b(loop, empty, loop, empty, end, end, end), []int{0}, true},
		{"straight code and a block between", cat(b(loop, empty, wasmbin.OpI32Const, 1, wasmbin.OpDrop, block, empty), b(loop, empty, end, end, end, end)), []int{0}, true},
		{"three", b(loop, empty, loop, empty, loop, empty, end, end, end, end), []int{0, 2}, true},
		{"call before the loop", b(wasmbin.OpCall, 0, loop, empty, end, end), nil, false},
		{"call between", b(wasmbin.OpNop, block, empty, end, loop, empty, wasmbin.OpCall, 0, loop, empty, end, end, end), nil, false},
		{"branch between", b(loop, empty, wasmbin.OpI32Const, 0, wasmbin.OpBrIf, 0, loop, empty, end, end, end), nil, true},
		{"if between", b(loop, empty, wasmbin.OpI32Const, 0, wasmbin.OpIf, empty, loop, empty, end, end, end, end), nil, true},
		{"memory.grow between", b(loop, empty, wasmbin.OpI32Const, 0, wasmbin.OpMemoryGrow, 0, wasmbin.OpDrop, loop, empty, end, end, end), nil, true},
		{"memory.fill between", b(loop, empty, wasmbin.OpI32Const, 0, wasmbin.OpI32Const, 0, wasmbin.OpI32Const, 0, wasmbin.OpPrefixFC, 11, 0, loop, empty, end, end, end), nil, true},
		{"end between", b(loop, empty, end, loop, empty, end, end), nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// As a leaf the function never defers; with a call after its
			// loops it does as the case says.
			leaf := !bytes.Contains(c.body, []byte{wasmbin.OpCall, 0})
			if leaf && planLoops(c.body).deferEntry {
				t.Errorf("a leaf defers its entry test")
			}
			body := cat(c.body[:len(c.body)-1], b(wasmbin.OpCall, 0, end))
			p := planLoops(body)
			if p.deferEntry != c.deferEntry {
				t.Errorf("deferEntry %v, want %v", p.deferEntry, c.deferEntry)
			}
			if len(p.skip) != len(c.skip) {
				t.Fatalf("skipped %v, want %v", p.skip, c.skip)
			}
			for _, off := range c.skip {
				if !p.skip[off] {
					t.Fatalf("skipped %v, want %v", p.skip, c.skip)
				}
			}
		})
	}
}

// TestLoopPlanStops: loops whose headers go unchecked and a function whose
// entry defers its test compute what the original does, a runaway of each
// is stopped by the flag, and with the flag set each traps within
// YieldMask+1 counts (passes counted by the guest in $n), as if every
// header and entry tested. The loop that must keep its check is stopped too.
func TestLoopPlanStops(t *testing.T) {
	orig := readFile(t, "testdata/loops.wasm")
	m, err := wasmbin.Parse(orig)
	if err != nil {
		t.Fatal(err)
	}
	// The module's shapes are the ones the rule applies to.
	unchecked, _ := uncheckedFuncs(m, MaxUncheckedCost)
	for i, want := range []struct {
		straight, widened int // unchecked headers
		deferEntry        bool
	}{{2, 2, false}, {0, 0, true}, {0, 1, false}, {0, 0, false}, {0, 0, false}} {
		p := planLoops(m.Codes[i].Body)
		n := len(p.skip)
		widenPlan(m, unchecked, m.Codes[i].Body, &p)
		if p.deferEntry != want.deferEntry || n != want.straight || len(p.skip) != want.widened {
			t.Fatalf("function %d: plan %+v (%d from straight runs)", i, p, n)
		}
	}
	res := mustInstrument(t, orig, Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			if raceEnabled && e.name == "interpreter" {
				t.Skip("the flag write races with the interpreter's read (see race_test.go)")
			}
			r := newRuntime(t, e.cfg())
			inst := instantiate(t, r, res.Module, "loops")
			passes := mutable(t, inst, GlobalExportName(0))
			for _, fn := range []string{"nested", "tailloop", "widened"} {
				passes.Set(0)
				if got := call(t, inst, fn, 3*(YieldMask+1))[0]; got != 3*(YieldMask+1) {
					t.Fatalf("%s(%d) = %d passes", fn, 3*(YieldMask+1), got)
				}
			}
			runUntilStopped(t, inst, res.StopExport, "nested", 0)
			runUntilStopped(t, inst, res.StopExport, "tailloop", 0)
			runUntilStopped(t, inst, res.StopExport, "widened", 0)
			runUntilStopped(t, inst, res.StopExport, "guarded", 1)
			for fn, arg := range map[string]uint64{"nested": 0, "tailloop": 0, "widened": 0, "guarded": 1} {
				// A fresh instance starts its count at 0, so the first
				// yield comes after a pass: the count carries from call to
				// call, and the one before could leave it one short of a
				// multiple of YieldMask+1, so that the entry alone stops.
				inst := instantiate(t, r, res.Module, "loops-"+fn)
				passes := mutable(t, inst, GlobalExportName(0))
				mutable(t, inst, res.StopExport).Set(1)
				if _, err := inst.ExportedFunction(fn).Call(context.Background(), arg); err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Fatalf("%s with the flag set: %v", fn, err)
				}
				if n := api.DecodeI32(passes.Get()); n <= 0 || n > YieldMask+1 {
					t.Errorf("%s: %d passes before the trap, want 1..%d", fn, n, YieldMask+1)
				}
			}
		})
	}
}

// checkPlan is planLoops' oracle, one forward scan per loop: a loop header
// goes unchecked exactly when the instructions after it, up to a later loop
// opening, only open blocks or run straight on, and the loop its run ends on
// keeps its check; the entry defers its test exactly when the same holds
// from the body's start and the function makes a call.
func checkPlan(t *testing.T, body []byte, p loopPlan) {
	t.Helper()
	var ins []wasmbin.Instr
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			t.Fatalf("body does not decode at %d: %v", off, err)
		}
		ins = append(ins, in)
		off = in.End
	}
	// reaches reports the index of the loop opening the run from ins[k:]
	// reaches first, or -1.
	reaches := func(k int) int {
		for j := k; j < len(ins); j++ {
			switch in := ins[j]; {
			case in.Op == wasmbin.OpLoop:
				return j
			case in.Op != wasmbin.OpBlock && !straight(in):
				return -1
			}
		}
		return -1
	}
	skipped := 0
	for k, in := range ins {
		if in.Op != wasmbin.OpLoop {
			continue
		}
		want := reaches(k+1) >= 0
		if p.skip[in.Offset] != want {
			t.Fatalf("loop at %d: unchecked %v, want %v", in.Offset, p.skip[in.Offset], want)
		}
		if want {
			skipped++
			j := k
			for p.skip[ins[j].Offset] {
				j = reaches(j + 1)
			}
			if ins[j].Op != wasmbin.OpLoop {
				t.Fatalf("loop at %d: its run ends on no checked loop", in.Offset)
			}
		}
	}
	if len(p.skip) != skipped {
		t.Fatalf("%d unchecked headers, %d of them loops", len(p.skip), skipped)
	}
	calls := false
	for _, in := range ins {
		switch in.Op {
		case wasmbin.OpCall, wasmbin.OpCallIndirect, wasmbin.OpReturnCall, wasmbin.OpReturnCallIndirect:
			calls = true
		}
	}
	if want := calls && reaches(0) >= 0; p.deferEntry != want {
		t.Fatalf("deferEntry %v, want %v", p.deferEntry, want)
	}
}

// FuzzPlanLoops: for whatever Parse accepts, every body's plan keeps the
// oracle's invariants.
func FuzzPlanLoops(f *testing.F) {
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
		unchecked, _ := uncheckedFuncs(m, MaxUncheckedCost)
		for _, c := range m.Codes {
			p := planLoops(c.Body)
			checkPlan(t, c.Body, p)
			widenPlan(m, unchecked, c.Body, &p)
			checkWidened(t, m, unchecked, c.Body, p)
		}
	})
}

// TestPlanLoopsRealPrograms: the plans of every function of the test
// modules, the plugins and the Lua interpreter keep the oracle's invariants.
func TestPlanLoopsRealPrograms(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../plugins/examples/*/*.wasm")
	for _, f := range append(append(files, more...), realProg) {
		m, err := wasmbin.Parse(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range m.Codes {
			checkPlan(t, c.Body, planLoops(c.Body))
		}
	}
}

// checkWidened is widenPlan's oracle, on the control-flow graph instead of
// the structure: from every unchecked loop header, each path reaches a loop
// opening nested in it before it branches back to the header, leaves the
// loop, returns, calls an unchecked function or runs a bulk instruction.
func checkWidened(t *testing.T, m *wasmbin.Module, unchecked []bool, body []byte, p loopPlan) {
	t.Helper()
	var ins []wasmbin.Instr
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			t.Fatalf("body does not decode at %d: %v", off, err)
		}
		ins = append(ins, in)
		off = in.End
	}
	// A deferred entry runs straight, through block and loop openings
	// only, into a loop header that tests.
	if p.deferEntry {
		k := 0
		for k < len(ins) && (ins[k].Op == wasmbin.OpBlock || ins[k].Op == wasmbin.OpLoop || straight(ins[k])) {
			k++
		}
		for k--; k >= 0 && ins[k].Op != wasmbin.OpLoop; k-- {
		}
		if k < 0 || p.skip[ins[k].Offset] {
			t.Fatalf("deferred entry, but its straight run ends on no loop header that tests")
		}
	}
	// Match every opening with its else and end, and record the frames
	// open at every instruction (innermost last).
	end, els := make([]int, len(ins)), make([]int, len(ins))
	open := make([][]int, len(ins))
	var stack []int
	for j, in := range ins {
		open[j] = append([]int(nil), stack...)
		switch in.Op {
		case wasmbin.OpBlock, wasmbin.OpLoop, wasmbin.OpIf:
			stack = append(stack, j)
			els[j] = -1
		case wasmbin.OpElse:
			els[stack[len(stack)-1]] = j
		case wasmbin.OpEnd:
			if len(stack) > 0 {
				end[stack[len(stack)-1]] = j
				stack = stack[:len(stack)-1]
			}
		}
	}
	for k, in := range ins {
		if in.Op != wasmbin.OpLoop || !p.skip[in.Offset] {
			continue
		}
		seen := map[int]bool{}
		var walk func(j int)
		walk = func(j int) {
			if j <= k || j >= end[k] {
				t.Fatalf("loop at %d: a path from its header reaches instruction %d, outside its body, before a loop opening", in.Offset, j)
			}
			if seen[j] {
				return
			}
			seen[j] = true
			target := func(l uint32) int {
				fr := open[j]
				if int(l) >= len(fr) {
					return len(ins) // the function's end
				}
				f := fr[len(fr)-1-int(l)]
				if ins[f].Op == wasmbin.OpLoop {
					return f
				}
				return end[f]
			}
			switch x := ins[j]; {
			case x.Op == wasmbin.OpLoop:
				return // covered: a nested loop's header
			case x.Op == wasmbin.OpUnreachable:
				return
			case x.Op == wasmbin.OpBr:
				walk(target(x.Index))
			case x.Op == wasmbin.OpBrIf:
				walk(target(x.Index))
				walk(j + 1)
			case x.Op == wasmbin.OpBrTable:
				walk(target(x.Index))
				walk(target(x.Index2)) // the largest label: the labels in between are checked by widenPlan's rule alike
				walk(j + 1)
			case x.Op == wasmbin.OpIf:
				walk(j + 1)
				if els[j] >= 0 {
					walk(els[j] + 1)
				} else {
					walk(end[j])
				}
			case x.Op == wasmbin.OpElse:
				walk(end[open[j][len(open[j])-1]])
			case x.Op == wasmbin.OpCall:
				if g := x.Index - m.ImportedFuncs; x.Index >= m.ImportedFuncs && g < uint32(len(unchecked)) && unchecked[g] {
					t.Fatalf("loop at %d: a path from its header calls unchecked function %d first", in.Offset, x.Index)
				}
				walk(j + 1)
			case x.Op == wasmbin.OpBlock, x.Op == wasmbin.OpEnd, x.Op == wasmbin.OpCallIndirect, straight(x):
				walk(j + 1)
			default:
				t.Fatalf("loop at %d: a path from its header runs %#x (at %d) first", in.Offset, x.Op, x.Offset)
			}
		}
		walk(k + 1)
	}
}

// TestWidenedPlans: in the test modules, the plugins and the Lua
// interpreter every widened plan passes the oracle, and widening finds more
// than the straight runs in Lua (its second interpreter loop).
func TestWidenedPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../plugins/examples/*/*.wasm")
	for _, f := range append(append(files, more...), realProg) {
		m, err := wasmbin.Parse(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		unchecked, _ := uncheckedFuncs(m, MaxUncheckedCost)
		straightRuns, widened := 0, 0
		for _, c := range m.Codes {
			p := planLoops(c.Body)
			straightRuns += len(p.skip)
			widenPlan(m, unchecked, c.Body, &p)
			widened += len(p.skip)
			checkWidened(t, m, unchecked, c.Body, p)
		}
		if f == realProg && widened <= straightRuns {
			t.Errorf("%s: %d unchecked loop headers widened, %d from straight runs", f, widened, straightRuns)
		}
	}
}
