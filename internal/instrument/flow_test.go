package instrument

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestCountFlowsThroughCalls: a caller's loop of calls of a callee whose
// loop runs fewer than YieldMask+1 passes per call stops within about
// YieldMask+1 passes of the flag, whichever way the callee leaves (final
// end, br_if or br_table to the body's label, return, tail call, or reached
// by a tail call), on either engine, not
// after about (YieldMask+1)²/2 passes as when the loop counts stayed in
// each function's local. The guest counts the passes itself, in $n.
func TestCountFlowsThroughCalls(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/flow.wasm"), Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			countFlows(t, newRuntime(t, e.cfg()), res)
		})
	}
}

func countFlows(t *testing.T, r wazero.Runtime, res *Result) {
	type run struct {
		fn   string
		args []uint64
	}
	var runs []run
	for _, k := range []uint64{3, (YieldMask + 1) / 2, YieldMask} {
		for f := range uint64(5) {
			runs = append(runs, run{"outer", []uint64{f, 0, k}})
		}
		runs = append(runs, run{"direct", []uint64{0, k}})
	}
	const calls = 20000 // more than YieldMask+1: the caller's own count crosses too
	for _, w := range runs {
		name := fmt.Sprintf("%s%v", w.fn, w.args)
		args := append([]uint64(nil), w.args...)
		k := args[len(args)-1]
		// A fresh instance, whose count starts at 0: the flag stops the
		// first call that runs YieldMask+1 counts.
		m := instantiate(t, r, res.Module, name)
		n := mutable(t, m, GlobalExportName(0))
		stop := mutable(t, m, res.StopExport)

		// Without the flag the derived module does what the original does.
		stop.Set(0)
		n.Set(0)
		args[len(args)-2] = 3
		call(t, m, w.fn, args...)
		if got := api.DecodeI32(n.Get()); uint64(got) != 3*k {
			t.Fatalf("%s: %d passes, want %d", name, got, 3*k)
		}

		stop.Set(1)
		n.Set(0)
		args[len(args)-2] = calls
		if _, err := m.ExportedFunction(w.fn).Call(context.Background(), args...); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("%s with the flag set: %v", name, err)
		}
		got := int(api.DecodeI32(n.Get()))
		t.Logf("%s: %d passes before the trap", name, got)
		if limit := 2 * (YieldMask + 1); got > limit {
			t.Errorf("%s: %d passes before the trap, want at most %d", name, got, limit)
		}
	}
}

// TestDeferredEntryRecursionStops: a recursive function whose entry leaves
// its test to a loop header that widenPlan then skips must still count its
// entry into the callee: the hand-over before the call would otherwise
// write back the count from before the entry's add, no level of the
// recursion would advance the count, and the guest would run until its
// stack overflows instead of trapping within YieldMask+1 calls. Only the
// compiler: the interpreter's call stack ends a few thousand frames deep,
// before YieldMask+1.
func TestDeferredEntryRecursionStops(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/flow.wasm"), Options{})
	m := instantiate(t, newRuntime(t, engines[0].cfg()), res.Module, "flow")
	mutable(t, m, res.StopExport).Set(1)
	n := mutable(t, m, GlobalExportName(0))
	_, err := m.ExportedFunction("recur").Call(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("recur with the flag set: %v", err)
	}
	if got := int(api.DecodeI32(n.Get())); got <= 0 || got > YieldMask+1 {
		t.Errorf("%d calls before the trap, want 1..%d", got, YieldMask+1)
	}
}
