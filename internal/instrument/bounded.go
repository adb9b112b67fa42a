package instrument

import "github.com/wasmesh/wasmesh/internal/wasmbin"

// # Functions without an entry check
//
// Most of what the checks cost on real programs is the entry check of small
// functions: a leaf that runs a dozen instructions pays seven more for the
// count and its branch (measured on the Lua interpreter: without entry
// checks the derived module runs as fast as the original, without loop
// checks it does not). Many functions do not need the check, because all
// they can do before they return or enter a checked function is bounded by
// their code. A defined function is left unchecked when
//
//   - it has no loop, so each of its instructions runs at most once per
//     call;
//   - no call_indirect can reach it: it is in no element segment, no
//     ref.func names it, and it is not exported (a table the host or
//     another module fills could hold it). call_indirect therefore only
//     reaches checked functions (or host functions), and so does any call of
//     an import;
//   - its direct calls (call, return_call) of unchecked functions form no
//     cycle: the unchecked functions are decided callees first, and a
//     function whose callees cannot all be decided first (a recursion,
//     direct or mutual) gets checked;
//   - its cost is at most MaxUncheckedCost: the number of its own
//     instructions plus, for every call site of an unchecked function, that
//     function's cost. A call of a checked function counts as one
//     instruction: the callee counts for itself.
//
// The cost counts a callee once per call site, not once per callee, so a
// DAG of calls that doubles at each level (f1 calls f2 twice, f2 calls f3
// twice, ...), whose run time is exponential in its size, doubles its cost
// at each level too: every few levels one level is checked, and the count
// goes on at a rate bounded below.
//
// So a call of an unchecked function runs at most MaxUncheckedCost
// instructions before it returns or enters a checked function. The checked
// code that calls unchecked functions pays for them in the count: every
// count point of a checked function (its entry, its loop headers) adds not
// 1 but the function's weight, 1 + (the most the unchecked calls on one
// path from a count point to the next can cost) / WeightUnit (see weight),
// and the check yields when the count crosses a multiple of YieldMask+1
// ((count & YieldMask) < weight; == 0 as before for weight 1). Between two
// counts the guest runs the checked code's own straight-line stretch, as
// before, plus at most about WeightUnit instructions of unchecked calls per
// unit of the count it added.
//
// What that buys and costs, measured (BenchmarkRealProgram, and the
// doubling DAG of testdata/unchecked.wat with the flag already set):
//
//	                     Lua instr./plain  DAG calls before the trap
//	every function checked     1.05–1.12      16 382 (0.2 ms)
//	unchecked, unweighted      1.01–1.07   1 031 775 (3.5 ms)
//	weights, WeightUnit 256    1.01–1.08     515 744 (1.7 ms)
//	weights, WeightUnit 32     1.03–1.10      85 348 (0.4 ms)
//
// (ranges over runs on a loaded 2-core machine; in one run the order was
// always that of the table.) Smaller units make checked functions that call
// many unchecked ones yield often enough to lose most of the gain. With
// 256, one count stands for at most a few hundred instructions, the size
// of an ordinary function's straight-line stretch, which is what it stood
// for before. Bulk instructions keep their own charge (see "Bulk
// instructions") wherever they are.

// WeightUnit is how many instructions of unchecked calls one count stands
// for (see "Functions without an entry check"). It equals MaxUncheckedCost:
// a checked call of one unchecked function of the largest cost adds 2.
const WeightUnit = 256

// maxWeight caps a count's weight below YieldMask+1, so that adding it
// cannot step over a multiple of YieldMask+1 unseen.
const maxWeight = (YieldMask + 1) / 4

// MaxUncheckedCost is the most instructions a call of a function without an
// entry check runs before it returns or enters a checked function (see
// "Functions without an entry check"): a few hundred nanoseconds of guest
// time. On the Lua interpreter 256, 1024 and 8192 gain the same, 64 little.
const MaxUncheckedCost = 256

// uncheckedFuncs reports, for each defined function of m, whether it can go
// without an entry check (see "Functions without an entry check").
// limit is the cost bound (MaxUncheckedCost but in tests); below 0 every
// function is checked.
// The second result is the cost of each unchecked function.
func uncheckedFuncs(m *wasmbin.Module, limit int) ([]bool, []uint64) {
	n := uint32(len(m.Codes))
	unchecked := make([]bool, n)
	cost := make([]uint64, n)
	taken, ok := addressTaken(m)
	if !ok || limit < 0 {
		return unchecked, cost
	}
	max := uint64(limit)
	const (
		undecided = iota
		checked
		free
	)
	state := make([]byte, n)
	pending := make([]int, n)      // call sites of undecided callees
	callers := make([][]uint32, n) // one entry per call site
	for i, c := range m.Codes {
		if taken[i] {
			state[i] = checked
			continue
		}
		var callees []uint32
	decode:
		for off := 0; off < len(c.Body); {
			in, err := wasmbin.DecodeInstr(c.Body, off)
			if err != nil { // Parse already decoded every body
				state[i] = checked
				break
			}
			off = in.End
			cost[i]++
			switch {
			case cost[i] > max, in.Op == wasmbin.OpLoop:
				state[i] = checked
				break decode
			case in.Op == wasmbin.OpCall || in.Op == wasmbin.OpReturnCall:
				if in.Index >= m.ImportedFuncs && in.Index-m.ImportedFuncs < n {
					callees = append(callees, in.Index-m.ImportedFuncs)
				}
			}
		}
		if state[i] == checked {
			continue
		}
		for _, g := range callees {
			callers[g] = append(callers[g], uint32(i))
		}
		pending[i] = len(callees)
	}
	// A call site of a function known to be checked costs nothing more.
	var ready []uint32
	settle := func(f uint32) {
		for _, caller := range callers[f] {
			if state[f] == free {
				cost[caller] += cost[f]
			}
			if pending[caller]--; pending[caller] == 0 && state[caller] == undecided {
				ready = append(ready, caller)
			}
		}
	}
	for f := uint32(0); f < n; f++ {
		if state[f] == checked {
			settle(f)
		}
	}
	for f := uint32(0); f < n; f++ {
		if state[f] == undecided && pending[f] == 0 {
			ready = append(ready, f)
		}
	}
	// Decide callees before callers. When nothing is ready, what is left
	// waits on a cycle: the lowest undecided function gets checked, which
	// breaks it.
	next := uint32(0)
	for {
		for len(ready) > 0 {
			f := ready[len(ready)-1]
			ready = ready[:len(ready)-1]
			if state[f] != undecided {
				continue
			}
			state[f] = checked
			if cost[f] <= max {
				state[f] = free
				unchecked[f] = true
			}
			settle(f)
		}
		for next < n && state[next] != undecided {
			next++
		}
		if next == n {
			for f := range cost {
				if !unchecked[f] {
					cost[f] = 0
				}
			}
			return unchecked, cost
		}
		state[next] = checked
		settle(next)
	}
}

// addressTaken marks the defined functions a call_indirect could reach:
// those in element segments, named by ref.func anywhere, or exported. It
// reports false when an element segment does not decode (Parse accepted
// it, so it should), and then every function must be taken as reachable.
func addressTaken(m *wasmbin.Module) ([]bool, bool) {
	taken := make([]bool, len(m.Codes))
	mark := func(f uint32) {
		if f >= m.ImportedFuncs && f-m.ImportedFuncs < uint32(len(taken)) {
			taken[f-m.ImportedFuncs] = true
		}
	}
	for _, e := range m.Exports {
		if e.Kind == wasmbin.KindFunc {
			mark(e.Index)
		}
	}
	refFuncs := func(code []byte) bool {
		for off := 0; off < len(code); {
			in, err := wasmbin.DecodeInstr(code, off)
			if err != nil {
				return false
			}
			if in.Op == wasmbin.OpRefFunc {
				mark(in.Index)
			}
			off = in.End
		}
		return true
	}
	for _, g := range m.Globals {
		if !refFuncs(g.Init) {
			return nil, false
		}
	}
	for _, c := range m.Codes {
		if !refFuncs(c.Body) {
			return nil, false
		}
	}
	for _, e := range m.Elements {
		if !elemFuncs(e.Raw, mark) {
			return nil, false
		}
	}
	return taken, true
}

// elemFuncs calls mark for every function an element segment's encoding
// (flags, table, offset, kind, items) names, and reports whether it decoded.
func elemFuncs(raw []byte, mark func(uint32)) bool {
	pos := 0
	u32 := func() (uint32, bool) {
		var v uint32
		for shift := uint(0); shift < 35 && pos < len(raw); shift += 7 {
			c := raw[pos]
			pos++
			v |= uint32(c&0x7f) << shift
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	// expr skips a constant expression (no blocks, so its first end ends
	// it), marking the functions its ref.func instructions name.
	expr := func() bool {
		for pos < len(raw) {
			in, err := wasmbin.DecodeInstr(raw, pos)
			if err != nil {
				return false
			}
			pos = in.End
			switch in.Op {
			case wasmbin.OpRefFunc:
				mark(in.Index)
			case wasmbin.OpEnd:
				return true
			}
		}
		return false
	}
	flags, ok := u32()
	if !ok || flags > 7 {
		return false
	}
	if flags&3 == 2 { // active with a table index
		if _, ok := u32(); !ok {
			return false
		}
	}
	if flags&1 == 0 && !expr() { // active: the offset
		return false
	}
	if flags&3 != 0 { // elemkind or reftype
		if pos++; pos > len(raw) {
			return false
		}
	}
	count, ok := u32()
	if !ok {
		return false
	}
	for j := uint32(0); j < count; j++ {
		if flags&4 != 0 {
			if !expr() {
				return false
			}
			continue
		}
		f, ok := u32()
		if !ok {
			return false
		}
		mark(f)
	}
	return pos == len(raw)
}

// weight is the count weight of every count point of a checked function
// (its entry and its loop headers; see "Functions without an entry
// check"): 1 + the most that unchecked calls can cost on one path from a
// count point to the next one (a loop header, or the function's end), over
// WeightUnit. The paths are those of the structured control flow, a
// br_table taken to branch to every label up to its largest.
func weight(m *wasmbin.Module, unchecked []bool, cost []uint64, body []byte, unit int64) uint32 {
	const dead = -1 // cur after an unconditional branch
	type frame struct {
		loop    bool
		els     bool  // an if that has its else
		entry   int64 // cur at an if
		endMost int64 // the most cur at the end, from branches to it
	}
	var frames []frame
	var cur, most int64
	// reach accounts for control reaching label l (0 innermost) with cur.
	reach := func(l uint32) {
		if cur == dead {
			return
		}
		if int(l) >= len(frames) { // the function's end
			most = max(most, cur)
			return
		}
		f := &frames[len(frames)-1-int(l)]
		if f.loop {
			most = max(most, cur) // a back edge ends the stretch
		} else {
			f.endMost = max(f.endMost, cur)
		}
	}
	calls := func(idx uint32) int64 {
		if g := idx - m.ImportedFuncs; idx >= m.ImportedFuncs && g < uint32(len(unchecked)) && unchecked[g] {
			return int64(cost[g])
		}
		return 0
	}
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil { // Parse already decoded every body
			return maxWeight
		}
		off = in.End
		switch in.Op {
		case wasmbin.OpBlock:
			frames = append(frames, frame{endMost: dead})
		case wasmbin.OpIf:
			frames = append(frames, frame{entry: cur, endMost: dead})
		case wasmbin.OpLoop:
			most = max(most, cur)
			frames = append(frames, frame{loop: true, endMost: dead})
			cur = 0
		case wasmbin.OpElse:
			if len(frames) == 0 { // Parse refuses such a body
				return maxWeight
			}
			f := &frames[len(frames)-1]
			f.endMost, f.els = max(f.endMost, cur), true
			cur = f.entry
		case wasmbin.OpEnd:
			if len(frames) == 0 { // the body's end
				most = max(most, cur)
				break
			}
			f := frames[len(frames)-1]
			frames = frames[:len(frames)-1]
			if !f.loop && !f.els && f.entry != dead {
				f.endMost = max(f.endMost, f.entry) // the empty else
			}
			if !f.loop {
				cur = max(cur, f.endMost)
			}
		case wasmbin.OpBr:
			reach(in.Index)
			cur = dead
		case wasmbin.OpBrIf:
			reach(in.Index)
		case wasmbin.OpBrTable:
			for l := uint32(0); l <= in.Index2 && int(l) <= len(frames); l++ {
				reach(l)
			}
			reach(in.Index)
			cur = dead
		case wasmbin.OpReturn, wasmbin.OpReturnCallIndirect:
			reach(uint32(len(frames)))
			cur = dead
		case wasmbin.OpReturnCall:
			if cur != dead {
				cur += calls(in.Index)
			}
			reach(uint32(len(frames)))
			cur = dead
		case wasmbin.OpUnreachable:
			cur = dead
		case wasmbin.OpCall:
			if cur != dead {
				cur += calls(in.Index)
			}
		}
	}
	if w := 1 + most/unit; w < maxWeight {
		return uint32(w)
	}
	return maxWeight
}
