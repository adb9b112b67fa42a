package instrument

import "github.com/wasmesh/wasmesh/internal/wasmbin"

// # Loop headers that need no check of their own
//
// A loop header needs a count because a back edge to it closes a cycle. If
// every pass through a header runs on, without a branch, a call or a
// return, into the header of a loop nested in it, that inner header's count
// is on every such cycle as well, so the outer one's is redundant: with
// nested loops that clang opens back to back (the Lua interpreter's
// luaV_execute opens three, and the outer two run 10% of all the checks it
// makes), one count per pass is enough. So in a straight run of code, made
// of instructions that neither branch nor call (a `block` or `loop` opening
// is one of them: it jumps nowhere), only the last loop header counts; the
// others go without their check. The code between two of those headers
// calls nothing, so no count point's weight changes (see weight).
//
// The function entry is such a header too: when the body opens with a
// straight run that reaches a loop header, the entry still adds its weight
// to $fuel_g (the count that carries recursion) but does not test it; it
// leaves $fuel at the value before the add, and the loop header's own add
// replays it on $fuel and tests the result, so the crossing of a multiple
// of YieldMask+1 that the entry's add made is seen there, a few
// instructions later, and calls the same $yield. A function that starts
// with a loop (a do-while or a tail recursion turned into one) so tests
// once per call, not twice. Only a function that makes calls of its own
// defers: in a leaf whose loop calls nothing but $yield, the entry's call of
// $yield in place makes wazero spill the context registers before the loop,
// which keeps the loop tighter (BenchmarkLoopOverhead's fnv loop runs 1.27
// times the original with the entry test, 1.50 without it).

// loopPlan is which count points of a body test: skip holds the offsets of
// the loop instructions whose header goes without a check, deferEntry tells
// that the entry leaves its test to the first checked loop header.
type loopPlan struct {
	skip       map[int]bool
	deferEntry bool
}

// planLoops finds the loop headers of a (parsed, so decodable) body that
// the next loop header of the same straight run covers (see "Loop headers
// that need no check of their own").
func planLoops(body []byte) loopPlan {
	var p loopPlan
	calls := false
	last := -1    // offset of the last loop opening in the current run
	inRun := true // the run that starts at the function entry
	entryRun := true
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			break
		}
		off = in.End
		switch in.Op {
		case wasmbin.OpCall, wasmbin.OpCallIndirect, wasmbin.OpReturnCall, wasmbin.OpReturnCallIndirect:
			calls = true
		}
		switch {
		case in.Op == wasmbin.OpLoop:
			if inRun && last >= 0 {
				if p.skip == nil {
					p.skip = map[int]bool{}
				}
				p.skip[last] = true
			}
			if entryRun {
				p.deferEntry = true
			}
			last, inRun = in.Offset, true
		case in.Op == wasmbin.OpBlock || straight(in):
		default:
			last, inRun, entryRun = -1, false, false
		}
	}
	p.deferEntry = p.deferEntry && calls
	return p
}

// straight reports whether in runs on to the next instruction and calls
// nothing: no branch, call, return, block structure other than an
// opening, trap instruction, or instruction the derived module turns into
// a call (bulk ones: see "Bulk instructions").
func straight(in wasmbin.Instr) bool {
	switch op := in.Op; {
	case op == wasmbin.OpNop, op == wasmbin.OpDrop, op == wasmbin.OpSelect, op == wasmbin.OpSelectT:
		return true
	case op == wasmbin.OpMemoryGrow:
		return false
	case op >= wasmbin.OpLocalGet && op <= 0xc4: // variables, tables, memory, numeric
		return true
	case op == wasmbin.OpRefNull, op == wasmbin.OpRefIsNull, op == wasmbin.OpRefFunc:
		return true
	case op == wasmbin.OpPrefixFC:
		return in.Sub <= 7 // the saturating truncations
	case op == wasmbin.OpPrefixFD:
		return true
	}
	return false
}

// # Loop headers whose every pass reaches a nested loop
//
// The straight run is the simplest case of a wider one: a loop header also
// needs no check when every pass through it reaches the opening of a loop
// nested directly in its body, whatever forward branches and calls it takes
// on the way (the Lua interpreter's second loop runs a few calls and
// branches before it opens the dispatch loop, 6% of its checks). widenPlan
// follows the code after the header, counting the blocks and ifs it opens,
// and skips the header when it reaches a loop opening outside any of them,
// having met only
//
//   - instructions that run straight on (see straight), block and if
//     openings, else and the end of a block it opened;
//   - branches to blocks it opened (forward, to their end, still before the
//     loop opening);
//   - calls of checked functions, imports and call_indirect (which reaches
//     only checked functions: see "Functions without an entry check"): the
//     callee counts for itself, and weight charges such a call nothing, so
//     no count point's weight changes;
//   - unreachable.
//
// Anything else, a branch to the header or out of the loop, a return, a
// call of an unchecked function, a bulk instruction, a loop opening inside
// a block it opened, keeps the check. The loop reached may itself go
// unchecked: it then reaches another one the same way, further on, and the
// last of them checks. The search gives up after maxWiden instructions. An
// entry that deferred its test to the header its straight run ends on tests
// again once that header is skipped (TestDeferredEntryRecursionStops).
const maxWiden = 4096

// widenPlan adds to p.skip the loop headers of body (a parsed function of
// m) whose every pass reaches a nested loop opening (see above).
func widenPlan(m *wasmbin.Module, unchecked []bool, body []byte, p *loopPlan) {
	var ins []wasmbin.Instr
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			return
		}
		ins = append(ins, in)
		off = in.End
	}
	for k, in := range ins {
		if in.Op != wasmbin.OpLoop || p.skip[in.Offset] || !reachesLoop(m, unchecked, ins[k+1:]) {
			continue
		}
		if p.skip == nil {
			p.skip = map[int]bool{}
		}
		p.skip[in.Offset] = true
	}
	// A deferred entry needs the header its straight run ends on to test:
	// once that header is skipped, the next one that tests lies past calls,
	// and a recursion through them would pass entry after entry untested
	// (and, with the count handed over at calls, uncounted).
	if p.deferEntry && p.skip[entryLoop(ins)] {
		p.deferEntry = false
	}
}

// entryLoop is the offset of the last loop opening of the straight run
// that starts a body (decoded as ins), or -1.
func entryLoop(ins []wasmbin.Instr) int {
	last := -1
	for _, in := range ins {
		switch {
		case in.Op == wasmbin.OpLoop:
			last = in.Offset
		case in.Op == wasmbin.OpBlock || straight(in):
		default:
			return last
		}
	}
	return last
}

// reachesLoop reports whether every path through ins, the code after a loop
// header, reaches a loop opening outside the blocks it opens (see "Loop
// headers whose every pass reaches a nested loop").
func reachesLoop(m *wasmbin.Module, unchecked []bool, ins []wasmbin.Instr) bool {
	depth := uint32(0) // blocks and ifs opened since the header
	for j, in := range ins {
		if j >= maxWiden {
			return false
		}
		switch in.Op {
		case wasmbin.OpLoop:
			return depth == 0
		case wasmbin.OpBlock, wasmbin.OpIf:
			depth++
		case wasmbin.OpElse, wasmbin.OpUnreachable:
		case wasmbin.OpEnd:
			if depth == 0 { // the loop's own end: control falls out of it
				return false
			}
			depth--
		case wasmbin.OpBr, wasmbin.OpBrIf:
			if in.Index >= depth {
				return false
			}
		case wasmbin.OpBrTable:
			if in.Index >= depth || in.Index2 >= depth {
				return false
			}
		case wasmbin.OpCall:
			if g := in.Index - m.ImportedFuncs; in.Index >= m.ImportedFuncs && g < uint32(len(unchecked)) && unchecked[g] {
				return false
			}
		case wasmbin.OpCallIndirect:
		default:
			if !straight(in) {
				return false
			}
		}
	}
	return false
}
