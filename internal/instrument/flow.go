package instrument

import "github.com/wasmesh/wasmesh/internal/wasmbin"

// # The count across calls
//
// A loop header counts in the function's local $fuel, which lives in a
// register; $fuel_g carries the count into callees. If the local count
// never went back to $fuel_g, a function called again and again whose loop
// runs fewer than YieldMask+1 passes per call would start each call from
// the same $fuel_g, and a caller's loop of such calls could run about
// (YieldMask+1)² passes between two yields. So a function with a counting
// loop header hands its count over wherever control leaves it:
//
//	before call, call_indirect:         $fuel_g = $fuel
//	after it returns:                   $fuel = $fuel_g (the callee counted on)
//	before return, return_call(_indirect), a branch to the body's label
//	(br, br_if, br_table) and the body's final end:  $fuel_g = $fuel
//
// The count is then one sequence through every call and return: each count
// point adds its weight to the value the previous one left, and its test
// sees every multiple of YieldMask+1 it steps over, so the guest stops
// within YieldMask+1 counts of the flag, whatever the call graph.
// Functions without a counting loop header already count in $fuel_g alone
// (their entry), and a trap leaves nothing to carry. The hand-over before a
// br_if or br_table is made whether or not the branch is taken: it only
// writes the current count, which the next hand-over overwrites.
//
// The hand-over costs a store before and a load after each call of such a
// function, and a store at its exits; functions without loops, most of
// them, pay nothing. Measured against Options.noCountFlow in the same run
// ("noflow"), on a loaded 2-core machine:
//
//	                            with hand-over  without
//	BenchmarkRealProgram (Lua)  1.076 1.029 1.053  1.084 1.034 1.054  × plain
//	          another run           1.024 1.061 0.973  1.035 1.055 0.972
//	BenchmarkLoopOverhead sum   2.88 3.83 3.01     2.91 3.89 3.07
//	                      fnv   1.33 1.29 1.27     1.22 1.23 1.36
//	                      calls 1.44 1.33 1.41     1.44 1.32 1.43
//
// that is, within the noise. Before, with a loop of calls of a function whose
// loop ran (YieldMask+1)/2 passes, about 67 million passes ran between the
// flag and the trap (TestCountFlowsThroughCalls); now at most YieldMask+1.

// countsLoops reports whether body, planned as p, has a loop header that
// counts (one p does not skip).
func countsLoops(body []byte, p loopPlan) bool {
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			return false
		}
		if in.Op == wasmbin.OpLoop && !p.skip[in.Offset] {
			return true
		}
		off = in.End
	}
	return false
}

// leaves reports whether the count must be handed to $fuel_g before in
// (at nesting depth, 0 in the function body), and taken back after it (see
// "The count across calls").
func leaves(in wasmbin.Instr, depth uint32) (before, after bool) {
	switch in.Op {
	case wasmbin.OpCall, wasmbin.OpCallIndirect:
		return true, true
	case wasmbin.OpReturn, wasmbin.OpReturnCall, wasmbin.OpReturnCallIndirect:
		return true, false
	case wasmbin.OpBr, wasmbin.OpBrIf:
		return in.Index == depth, false
	case wasmbin.OpBrTable: // Index2 is the largest label
		return in.Index2 == depth, false
	case wasmbin.OpEnd:
		return depth == 0, false
	}
	return false, false
}
