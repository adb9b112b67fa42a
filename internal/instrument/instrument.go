// Package instrument derives the module the host actually runs from a
// guest's original module. The derived module
//
//   - exports every mutable global under a reserved name, so transparent
//     snapshots can read and restore state the guest never exported (wazero
//     gives the host only exported globals);
//   - lets the host preempt a runaway guest from another goroutine (see
//     below);
//   - sets a tables-dirty flag before any instruction that changes a table or
//     an element segment, so a transparent snapshot can refuse a daemon whose
//     tables no longer match what instantiation builds;
//   - charges bulk memory and table instructions to the preemption count
//     in proportion to their size (see "Bulk instructions" at bulkShift),
//     and runs memory.fill and memory.copy in chunks with a stop check
//     between two (see "Chunked fills and copies" in chunk.go);
//   - caps the memory maximum at the host's limit.
//
// The derived module appends globals, types, functions ($yield, one
// $reenter per loop-free function with an entry check, $charge when the module has a bulk
// instruction, $fill and $copy when it has a memory.fill or memory.copy),
// one local per function and exports; it adds no
// import, so no existing index shifts and every call, branch, element
// segment, export and the name section stay valid. The daemon
// kind's identity is the digest of the original bytes, never of the derived
// ones.
//
// # Preemption
//
// A flag check alone (global.get $stop; if; unreachable; end at every loop
// header and function entry) stops a spinning guest in wazero, but it is not
// enough: wazero's native code never yields to the Go scheduler, so when a
// garbage collection starts while a guest spins, the stop-the-world waits
// for that goroutine forever and every other goroutine, the watchdog that
// would set the flag included, stays frozen. The node hangs. (wazero's
// WithCloseOnContextDone avoids this by calling into Go at every check,
// which is what makes it slow.)
//
// So the derived module counts instead, and leaves native code now and then:
//
//	function entry:  $fuel = $fuel_g + w; $fuel_g = $fuel
//	                 if ($fuel & YieldMask) < w { return_call $reenter_f(params) }
//	                 (in a function with a loop: { call $yield })
//	loop header:     $fuel = $fuel + w
//	                 if ($fuel & YieldMask) < w { call $yield }
//	$reenter_f:      call $yield; return_call $f(params)
//	$yield:          if $stop { unreachable }
//	                 memory.grow 0 (drop)
//	in a function with a counting loop header:
//	  before a call and every way out:  $fuel_g = $fuel
//	  after a call:                     $fuel = $fuel_g
//
// so the count runs on through calls and returns as one sequence (see "The
// count across calls" in flow.go): a short loop called again and again
// advances it as much as one long loop.
//
// A loop header that runs straight on into a nested loop's header, or whose
// every pass reaches one past forward branches and calls of checked
// functions, has no check of its own, and an entry that runs straight on into a loop header
// adds to $fuel_g without testing: that header tests for it (see "Loop
// headers that need no check of their own" and "Loop headers whose every
// pass reaches a nested loop" in loops.go).
//
// $fuel is a new local of each function (kept in a register, so a loop
// header costs an add, an and and a well-predicted branch), $fuel_g a new
// global carrying the count across calls. w, the function's weight, is
// 1 unless it calls functions that have no entry check: small loop-free
// functions that no call_indirect can reach and whose calls cannot recurse
// go without one, since what a call of them can run is bounded by their
// code (MaxUncheckedCost instructions), and their callers' weights pay
// for that work (see "Functions without an entry check" in bounded.go). The entry check of a loop-free
// function leaves by a tail call and comes back by one, so nothing in the
// function's frame lives across a call the original did not make: the
// frame, and so the recursion depth the guest reaches, stays the original's
// (see rewriteCode). A tail
// call runs the callee's entry check like any call, so endless tail
// recursion is stopped too. memory.grow is implemented in Go
// by wazero's compiler, so every YieldMask+1 counts the goroutine passes through Go code where the scheduler can stop it for a
// collection or hand the processor to another goroutine. A module without
// memory gets an empty one (0 pages, max 0) for this purpose.
//
// The host stops a guest by setting the exported i32 global StopExport to 1
// (api.MutableGlobal.Set, from any goroutine); the guest traps with
// "unreachable" within YieldMask+1 counts: loop iterations, calls of
// checked functions, or WeightUnit instructions of unchecked calls, however
// they are spread over calls (TestCountFlowsThroughCalls). The host must
// tell that trap from a genuine unreachable by its own flag, reset the flag
// to 0, and roll the daemon back, as for any failed event.
package instrument

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// Reserved export names the derived module adds.
var (
	StopExport        = abi.ReservedExportPrefix + "stop"
	TablesDirtyExport = abi.ReservedExportPrefix + "tables_dirty"
	// StartExport names the module's start function in the derived module,
	// which has no start section: wazero would run a start function inside
	// InstantiateModule, before the host can reach the preemption flag, so
	// a start section that loops forever could not be stopped. The host
	// calls this export right after instantiation under the CPU budget.
	StartExport = abi.ReservedExportPrefix + "start"
)

// GlobalExportName is the reserved export name of global idx.
func GlobalExportName(idx uint32) string {
	return abi.ReservedExportPrefix + "g" + strconv.FormatUint(uint64(idx), 10)
}

// YieldMask sets how often instrumented code leaves native code: every
// YieldMask+1 counts (loop iterations and checked function entries, each
// counting its weight).
const YieldMask = 1<<14 - 1

// MaxPages is the largest memory a wasm32 module can have (4 GiB).
const MaxPages = 65536

// ErrMemoryLimit is matched by a *MemoryLimitError.
var ErrMemoryLimit = errors.New("module memory exceeds the limit")

// ErrUnsupported is matched by errors for modules the instrumenter cannot
// derive a snapshot-able module from.
var ErrUnsupported = errors.New("module cannot be instrumented")

// MemoryLimitError reports a module whose initial memory is above the cap.
type MemoryLimitError struct {
	ModuleMin, Limit uint32 // pages
}

func (e *MemoryLimitError) Error() string {
	return fmt.Sprintf("module memory exceeds the limit: it needs %d pages (%d MiB) at start, the limit is %d pages (%d MiB)",
		e.ModuleMin, e.ModuleMin/16, e.Limit, e.Limit/16)
}

// Is makes errors.Is(err, ErrMemoryLimit) true.
func (e *MemoryLimitError) Is(target error) bool { return target == ErrMemoryLimit }

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Options configure Instrument.
type Options struct {
	// MaxMemoryPages caps the memory maximum (64 KiB pages). 0 keeps the
	// module's own maximum.
	MaxMemoryPages uint32
	// MaxTableEntries caps the sum of the maxima of the module's tables
	// (each gets an equal share); table.grow past it returns -1. 0 keeps the
	// modules' own maxima.
	MaxTableEntries uint64

	// uncheckedCost replaces MaxUncheckedCost when not 0, and leaves every
	// function checked when negative: benchmarks compare with it.
	uncheckedCost int
	// weightUnit replaces WeightUnit when not 0.
	weightUnit int64
	// checkEveryLoop keeps a check at every loop header and a test at every
	// entry (see "Loop headers that need no check of their own"):
	// benchmarks compare with it.
	checkEveryLoop bool
	// noCountFlow leaves the loop counts in each function's local, as
	// before "The count across calls": benchmarks compare with it.
	noCountFlow bool
}

// GlobalExport names one mutable global of the original module in the
// derived one.
type GlobalExport struct {
	Index  uint32 // in the original module's global index space
	Type   abi.ValType
	Export string
}

// Result is the derived module and what the host needs to drive it.
type Result struct {
	// Module is the instrumented module.
	Module []byte
	// Globals lists every mutable global, in index order, with its
	// reserved export name.
	Globals []GlobalExport
	// StopExport names the preemption flag (a mutable i32).
	StopExport string
	// TablesDirtyExport names the table-mutation flag (a mutable i32), or is
	// empty when the module has no table-mutating instruction.
	TablesDirtyExport string
	// StartExport names the former start function (see the constant), or is
	// empty when the module has no start section.
	StartExport string
	// MemoryMin and MemoryMax are the memory limits in pages after capping
	// (0, 0 for a module without memory; MemoryMax is MaxPages when the
	// module has no maximum and no cap applies).
	MemoryMin, MemoryMax uint32
}

// Instrument derives the module the host runs. It fails with a wasmbin
// parse error for unparseable bytes, with *MemoryLimitError when the
// module's initial memory exceeds opt.MaxMemoryPages, and with an error
// matching ErrUnsupported for modules whose state a transparent snapshot
// cannot carry (mutable v128 or reference globals, imported or 64-bit or
// shared or multiple memories, exports already using the reserved prefix).
func Instrument(module []byte, opt Options) (*Result, error) {
	m, err := wasmbin.Parse(module)
	if err != nil {
		return nil, err
	}
	res := &Result{StopExport: StopExport}

	if err := checkExports(m); err != nil {
		return nil, err
	}
	globals, err := mutableGlobals(m)
	if err != nil {
		return nil, err
	}
	res.Globals = globals

	sections := m.Sections
	mem, changed, err := capMemory(m, opt.MaxMemoryPages)
	if err != nil {
		return nil, err
	}
	switch {
	case mem == nil: // $yield needs a memory to grow by 0
		sections = wasmbin.SetSection(sections, wasmbin.MemorySection([]wasmbin.Limits{{HasMax: true}}))
	default:
		res.MemoryMin = uint32(mem.Min)
		res.MemoryMax = MaxPages
		if mem.HasMax {
			res.MemoryMax = uint32(mem.Max)
		}
		if changed {
			sections = wasmbin.SetSection(sections, wasmbin.MemorySection([]wasmbin.Limits{*mem}))
		}
	}

	if tables, changed, err := capTables(m, opt.MaxTableEntries); err != nil {
		return nil, err
	} else if changed {
		sections = wasmbin.SetSection(sections, wasmbin.TableSection(tables))
	}

	// New globals go after the module's own, the new function after its
	// functions, the new type after its types: nothing shifts.
	ix := indices{stop: m.NumGlobals(), fuel: m.NumGlobals() + 1, dirty: m.NumGlobals() + 2, yield: m.NumFuncs()}
	types := m.Types
	ix.yieldType = uint32(len(types))
	for i, t := range types {
		if len(t.Params) == 0 && len(t.Results) == 0 {
			ix.yieldType = uint32(i)
			break
		}
	}
	if ix.yieldType == uint32(len(types)) {
		types = append(append([]wasmbin.FuncType(nil), types...), wasmbin.FuncType{})
		sections = wasmbin.SetSection(sections, wasmbin.TypeSection(types))
	}

	limit := MaxUncheckedCost
	if opt.uncheckedCost != 0 {
		limit = opt.uncheckedCost
	}
	ix.unchecked, ix.cost = uncheckedFuncs(m, limit)
	ix.unit = WeightUnit
	if opt.weightUnit != 0 {
		ix.unit = opt.weightUnit
	}
	ix.everyLoop = opt.checkEveryLoop
	ix.noFlow = opt.noCountFlow
	ix.reenter = make([]uint32, len(m.Codes))
	next := ix.yield + 1
	for i, c := range m.Codes {
		if !ix.unchecked[i] && !hasLoop(c.Body) {
			ix.reenter[i] = next
			next++
		}
	}
	if hasBulk(m) {
		ix.charge = next
		next++
		types, ix.chargeType = typeIndex(types, chargeSig)
		sections = wasmbin.SetSection(sections, wasmbin.TypeSection(types))
	}
	if ix.charge != 0 && hasChunked(m) {
		ix.fill, ix.copy = next, next+1
		next += 2
		types, ix.helperType = typeIndex(types, helperSig)
		types, ix.pairType = typeIndex(types, pairSig)
		sections = wasmbin.SetSection(sections, wasmbin.TypeSection(types))
	}
	codes, usesTables, err := rewriteCode(m, ix)
	if err != nil {
		return nil, err
	}
	codes = append(codes, wasmbin.Code{Body: yieldBody(ix)})
	funcs := append(append(make([]uint32, 0, 2*len(m.Funcs)+1), m.Funcs...), ix.yieldType)
	for i := range m.Codes {
		if ix.reenter[i] != 0 {
			codes = append(codes, wasmbin.Code{Body: reenterBody(m, ix, i)})
			funcs = append(funcs, m.Funcs[i])
		}
	}
	chargePos := len(codes)
	if ix.charge != 0 {
		codes = append(codes, wasmbin.Code{Locals: nil, Body: chargeBody(ix)})
		funcs = append(funcs, ix.chargeType)
	}
	if ix.fill != 0 {
		codes = append(codes, wasmbin.Code{Body: fillBody(ix)}, wasmbin.Code{Body: copyBody(ix)})
		funcs = append(funcs, ix.helperType, ix.helperType)
	}
	sections = wasmbin.SetSection(sections, wasmbin.FunctionSection(funcs))
	sections = wasmbin.SetSection(sections, wasmbin.CodeSection(codes))

	i32 := wasmbin.Global{Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true}, Init: wasmbin.ConstI32(0)}
	newGlobals := append(append([]wasmbin.Global(nil), m.Globals...), i32, i32)
	exports := append([]wasmbin.Export(nil), m.Exports...)
	for _, g := range globals {
		exports = append(exports, wasmbin.Export{Name: g.Export, Kind: wasmbin.KindGlobal, Index: g.Index})
	}
	exports = append(exports, wasmbin.Export{Name: StopExport, Kind: wasmbin.KindGlobal, Index: ix.stop})
	if m.Start != nil {
		exports = append(exports, wasmbin.Export{Name: StartExport, Kind: wasmbin.KindFunc, Index: *m.Start})
		res.StartExport = StartExport
		sections = wasmbin.RemoveSection(sections, func(s wasmbin.Section) bool { return s.ID == wasmbin.SectionStart })
	}
	if usesTables {
		newGlobals = append(newGlobals, i32)
		exports = append(exports, wasmbin.Export{Name: TablesDirtyExport, Kind: wasmbin.KindGlobal, Index: ix.dirty})
		res.TablesDirtyExport = TablesDirtyExport
	}
	if ix.charge != 0 {
		// The byte counter's index is fixed only now (the dirty flag before
		// it exists only when used), so $charge's body is built again.
		ix.spent = m.NumGlobals() + uint32(len(newGlobals)-len(m.Globals))
		newGlobals = append(newGlobals, wasmbin.Global{Type: wasmbin.GlobalType{Type: wasmbin.I64, Mutable: true}, Init: wasmbin.ConstI64(0)})
		codes[chargePos] = wasmbin.Code{Body: chargeBody(ix)}
		if ix.fill != 0 {
			codes[chargePos+1] = wasmbin.Code{Body: fillBody(ix)}
			codes[chargePos+2] = wasmbin.Code{Body: copyBody(ix)}
		}
		sections = wasmbin.SetSection(sections, wasmbin.CodeSection(codes))
	}
	sections = wasmbin.SetSection(sections, wasmbin.GlobalSection(newGlobals))
	sections = wasmbin.SetSection(sections, wasmbin.ExportSection(exports))
	sections = keepNames(m, ix, sections)
	res.Module = wasmbin.Encode(sections)
	return res, nil
}

// indices of what the instrumenter adds.
type indices struct {
	stop, fuel, dirty uint32 // globals
	yield, yieldType  uint32
	// reenter[i] is the index of $reenter_i, or 0 for a function with a
	// loop, which has none (it calls $yield in place), and for an unchecked
	// one.
	reenter []uint32
	// unchecked[i] tells that defined function i gets no entry check (see
	// "Functions without an entry check" in bounded.go).
	unchecked []bool
	// cost[i] is the cost of unchecked function i (0 for a checked one),
	// which its callers' count weights carry.
	cost []uint64
	// unit is WeightUnit but in tests.
	unit int64
	// everyLoop is Options.checkEveryLoop, noFlow Options.noCountFlow.
	everyLoop, noFlow bool
	// charge is the index of $charge (0: the module has no bulk
	// instruction, so none is added), chargeType its type, spent the i64
	// global it counts bytes in.
	charge, chargeType, spent uint32
	// fill and copy are the indices of $fill and $copy (0: the module has
	// no memory.fill or memory.copy), helperType their type (see "Chunked
	// fills and copies").
	fill, copy, helperType uint32
	// pairType is the block type [i32 i32] -> [] of the inline fast path
	// (see chunkSite).
	pairType uint32
}

func checkExports(m *wasmbin.Module) error {
	for _, e := range m.Exports {
		if len(e.Name) >= len(abi.ReservedExportPrefix) && e.Name[:len(abi.ReservedExportPrefix)] == abi.ReservedExportPrefix {
			return unsupported("export %q uses the reserved prefix %q", e.Name, abi.ReservedExportPrefix)
		}
	}
	return nil
}

func mutableGlobals(m *wasmbin.Module) ([]GlobalExport, error) {
	var out []GlobalExport
	for idx := uint32(0); idx < m.NumGlobals(); idx++ {
		gt, _ := m.GlobalType(idx)
		if !gt.Mutable {
			continue
		}
		switch gt.Type {
		case wasmbin.I32, wasmbin.I64, wasmbin.F32, wasmbin.F64:
		default:
			return nil, unsupported("mutable global %d has type %s, which a transparent snapshot cannot carry", idx, abi.ValType(gt.Type))
		}
		out = append(out, GlobalExport{Index: idx, Type: abi.ValType(gt.Type), Export: GlobalExportName(idx)})
	}
	return out, nil
}

// capMemory returns the module's memory limits after applying the cap, and
// whether they changed; nil when the module has no memory.
func capMemory(m *wasmbin.Module, limit uint32) (*wasmbin.Limits, bool, error) {
	if m.ImportedMemories > 0 {
		return nil, false, unsupported("the module imports its memory")
	}
	if len(m.Memories) == 0 {
		return nil, false, nil
	}
	if len(m.Memories) > 1 {
		return nil, false, unsupported("the module has %d memories", len(m.Memories))
	}
	l := m.Memories[0]
	if l.Memory64 || l.Shared {
		return nil, false, unsupported("64-bit or shared memory")
	}
	if limit == 0 || limit > MaxPages {
		if limit == 0 {
			return &l, false, nil
		}
		limit = MaxPages
	}
	if l.Min > uint64(limit) {
		return nil, false, &MemoryLimitError{ModuleMin: uint32(l.Min), Limit: limit}
	}
	if l.HasMax && l.Max <= uint64(limit) {
		return &l, false, nil
	}
	l.Max, l.HasMax = uint64(limit), true
	return &l, true, nil
}

// ErrTableLimit is matched by the error of a module whose tables' initial
// sizes exceed MaxTableEntries; it also matches ErrMemoryLimit, since tables
// count against the memory limit.
var ErrTableLimit = fmt.Errorf("%w: tables", ErrMemoryLimit)

// capTables gives each defined table an equal share of limit entries as its
// maximum (lowering, never raising, a declared one), so table.grow fails
// the spec's way (-1) instead of growing host memory without bound.
func capTables(m *wasmbin.Module, limit uint64) ([]wasmbin.TableType, bool, error) {
	if limit == 0 || len(m.Tables) == 0 {
		return nil, false, nil
	}
	share := limit / uint64(len(m.Tables))
	tables := append([]wasmbin.TableType(nil), m.Tables...)
	changed := false
	for i := range tables {
		l := &tables[i].Limits
		if l.Min > share {
			return nil, false, fmt.Errorf("%w: table %d starts with %d entries, over its share %d of the %d-entry cap", ErrTableLimit, i, l.Min, share, limit)
		}
		if !l.HasMax || l.Max > share {
			l.Max, l.HasMax, changed = share, true, true
		}
	}
	return tables, changed, nil
}

// yieldBody is $yield: trap if the host asked to stop, else pass through Go
// (memory.grow 0) so the scheduler can stop or switch this goroutine.
func yieldBody(ix indices) []byte {
	b := wasmbin.AppendU32([]byte{wasmbin.OpGlobalGet}, ix.stop)
	b = append(b, wasmbin.OpIf, 0x40, wasmbin.OpUnreachable, wasmbin.OpEnd)
	b = append(b, wasmbin.OpI32Const, 0, wasmbin.OpMemoryGrow, 0, wasmbin.OpDrop, wasmbin.OpEnd)
	return b
}

// reenterBody is $reenter_i, the out-of-line half of function i's entry
// check: it has function i's type, yields, and tail-calls function i with the
// same arguments. Function i's entry then counts once more, so it does not
// come back here.
func reenterBody(m *wasmbin.Module, ix indices, i int) []byte {
	b := wasmbin.AppendU32([]byte{wasmbin.OpCall}, ix.yield)
	for p := range m.Types[m.Funcs[i]].Params {
		b = wasmbin.AppendU32(append(b, wasmbin.OpLocalGet), uint32(p))
	}
	b = wasmbin.AppendU32(append(b, wasmbin.OpReturnCall), m.ImportedFuncs+uint32(i))
	return append(b, wasmbin.OpEnd)
}

// rewriteCode adds the fuel local to every function, the counting
// sequences at its entry and at every loop header, and the dirty mark before
// every table mutation.
//
// In a function without loops the entry check leaves through a tail call
// (return_call $reenter_i) rather than calling $yield in place: a call that
// returns into the prologue makes the compiler keep its context registers
// and every parameter alive across it, which costs stack slots in every
// frame (half the reachable recursion depth for the smallest frame under
// wazero's compiler). A tail call returns nowhere, so nothing is live
// across it and the frame is the original's. A function with a loop calls
// $yield in place (see below).
func rewriteCode(m *wasmbin.Module, ix indices) ([]wasmbin.Code, bool, error) {
	// check(w): the count, on the stack, crossed a multiple of YieldMask+1
	// by adding w: (fuel & YieldMask) < w, or == 0 for w == 1.
	check := func(b []byte, w uint32) []byte {
		b = wasmbin.AppendS32(append(b, wasmbin.OpI32Const), YieldMask)
		b = append(b, 0x71 /* i32.and */)
		if w == 1 {
			b = append(b, 0x45 /* i32.eqz */)
		} else {
			b = append(wasmbin.AppendS32(append(b, wasmbin.OpI32Const), int32(w)), 0x49 /* i32.lt_u */)
		}
		return append(b, wasmbin.OpIf, 0x40)
	}
	// tail(w): if check(w) { call $yield } (loop headers).
	tail := func(b []byte, w uint32) []byte {
		return append(wasmbin.AppendU32(append(check(b, w), wasmbin.OpCall), ix.yield), wasmbin.OpEnd)
	}
	mark := append([]byte{wasmbin.OpI32Const, 1}, wasmbin.AppendU32([]byte{wasmbin.OpGlobalSet}, ix.dirty)...)

	usesTables := false
	codes := make([]wasmbin.Code, len(m.Codes))
	var entry []byte
	for i, c := range m.Codes {
		nlocals := uint64(len(m.Types[m.Funcs[i]].Params))
		for _, l := range c.Locals {
			nlocals += uint64(l.Count)
		}
		if nlocals >= 1<<32-1 {
			return nil, false, unsupported("function %d has no room for another local", int(m.ImportedFuncs)+i)
		}
		fuel := uint32(nlocals)
		w := weight(m, ix.unchecked, ix.cost, c.Body, ix.unit)
		// entry: global.get $fuel_g; i32.const w; i32.add; local.tee $fuel;
		// global.set $fuel_g; local.get $fuel; check(w)
		//   local.get 0..params-1; return_call $reenter_i
		// end
		entry = wasmbin.AppendU32(append(entry[:0], wasmbin.OpGlobalGet), ix.fuel)
		entry = wasmbin.AppendS32(append(entry, wasmbin.OpI32Const), int32(w))
		entry = wasmbin.AppendU32(append(entry, wasmbin.OpI32Add, wasmbin.OpLocalTee), fuel)
		entry = wasmbin.AppendU32(append(entry, wasmbin.OpGlobalSet), ix.fuel)
		entry = wasmbin.AppendU32(append(entry, wasmbin.OpLocalGet), fuel)
		var plan loopPlan
		if !ix.everyLoop && !ix.unchecked[i] {
			plan = planLoops(c.Body)
			widenPlan(m, ix.unchecked, c.Body, &plan)
		}
		switch {
		case plan.deferEntry:
			// entry: global.get $fuel_g; local.tee $fuel; i32.const w;
			// i32.add; global.set $fuel_g: the first loop header tests.
			entry = wasmbin.AppendU32(append(entry[:0], wasmbin.OpGlobalGet), ix.fuel)
			entry = wasmbin.AppendU32(append(entry, wasmbin.OpLocalTee), fuel)
			entry = wasmbin.AppendS32(append(entry, wasmbin.OpI32Const), int32(w))
			entry = wasmbin.AppendU32(append(entry, wasmbin.OpI32Add, wasmbin.OpGlobalSet), ix.fuel)
		case ix.reenter[i] == 0:
			// The loop's own yield call already keeps the function's values
			// in stack slots, so calling in place costs the frame nothing
			// more, and wazero's register allocator keeps the loop tighter
			// when the context registers are spilled before it is entered.
			entry = tail(entry, w)
		default:
			entry = check(entry, w)
			for p := range m.Types[m.Funcs[i]].Params {
				entry = wasmbin.AppendU32(append(entry, wasmbin.OpLocalGet), uint32(p))
			}
			entry = wasmbin.AppendU32(append(entry, wasmbin.OpReturnCall), ix.reenter[i])
			entry = append(entry, wasmbin.OpEnd)
		}
		// loop: local.get $fuel; i32.const w; i32.add; local.tee $fuel; tail(w)
		loop := wasmbin.AppendU32([]byte{wasmbin.OpLocalGet}, fuel)
		loop = wasmbin.AppendS32(append(loop, wasmbin.OpI32Const), int32(w))
		loop = wasmbin.AppendU32(append(loop, wasmbin.OpI32Add, wasmbin.OpLocalTee), fuel)
		loop = tail(loop, w)

		body := c.Body
		out := make([]byte, 0, len(body)+len(entry)+len(body)/8)
		if !ix.unchecked[i] {
			out = append(out, entry...)
		}
		// A function whose loop headers count in $fuel hands the count
		// back to $fuel_g wherever control leaves it, for a call or for
		// good, and takes it up again after a call (see "The count across
		// calls"); depth is the nesting of the instruction, 0 in the body.
		flow := !ix.noFlow && !ix.unchecked[i] && countsLoops(body, plan)
		save := wasmbin.AppendU32([]byte{wasmbin.OpLocalGet}, fuel)
		save = wasmbin.AppendU32(append(save, wasmbin.OpGlobalSet), ix.fuel)
		load := wasmbin.AppendU32([]byte{wasmbin.OpGlobalGet}, ix.fuel)
		load = wasmbin.AppendU32(append(load, wasmbin.OpLocalSet), fuel)
		depth := uint32(0)
		copied := 0
		scratch := false
		var prev wasmbin.Instr
		for off := 0; off < len(body); {
			in, err := wasmbin.DecodeInstr(body, off)
			if err != nil { // Parse already decoded every body
				return nil, false, fmt.Errorf("instrument: function %d: %w", int(m.ImportedFuncs)+i, err)
			}
			if flow {
				before, after := leaves(in, depth)
				if before {
					out = append(append(out, body[copied:in.Offset]...), save...)
					copied = in.Offset
				}
				if after {
					out = append(append(out, body[copied:in.End]...), load...)
					copied = in.End
				}
				switch in.Op {
				case wasmbin.OpBlock, wasmbin.OpLoop, wasmbin.OpIf:
					depth++
				case wasmbin.OpEnd:
					depth--
				}
			}
			if in.Op == wasmbin.OpLoop && !plan.skip[in.Offset] {
				out = append(out, body[copied:in.End]...)
				out = append(out, loop...)
				copied = in.End
			}
			if shift, ok := bulkShift(in); ok && !smallConstCount(body, prev, shift) {
				if h := chunkHelper(ix, in); h != 0 {
					// The helper takes the instruction's operands and
					// charges each chunk itself.
					out = append(out, body[copied:in.Offset]...)
					if uint64(fuel)+1 < 1<<32-1 {
						out = chunkSite(out, ix, h, fuel+1, body[in.Offset:in.End])
						scratch = true
					} else {
						out = wasmbin.AppendU32(append(out, wasmbin.OpCall), h)
					}
					copied = in.End
					prev = in
					off = in.End
					continue
				}
				// The count is the instruction's last operand, on top of the
				// stack: $charge takes it with the shift and hands it back.
				out = append(out, body[copied:in.Offset]...)
				out = append(out, wasmbin.OpI32Const, shift)
				out = wasmbin.AppendU32(append(out, wasmbin.OpCall), ix.charge)
				copied = in.Offset
			}
			if in.IsTableMutation() {
				usesTables = true
				out = append(out, body[copied:in.Offset]...)
				out = append(out, mark...)
				copied = in.Offset
			}
			prev = in
			off = in.End
		}
		out = append(out, body[copied:]...)
		added := uint32(1) // $fuel
		if scratch {
			added++ // chunkSite's count
		}
		locals := append(append([]wasmbin.LocalDecl(nil), c.Locals...), wasmbin.LocalDecl{Count: added, Type: wasmbin.I32})
		codes[i] = wasmbin.Code{Locals: locals, Body: out}
	}
	return codes, usesTables, nil
}

// # Bulk instructions
//
// memory.fill, memory.copy, memory.init, table.fill, table.copy, table.init,
// memory.grow and table.grow do work in proportion to an operand, up to
// gigabytes in one instruction, so a loop of them would run for seconds
// between two loop-header checks. Before each of them the derived module
// calls
//
//	$charge(n, shift) -> n:  $spent += n << shift
//	                         if $spent >= ChargeYield { $spent = 0; call $yield }
//
// with the count n (the instruction's last operand) converted to bytes
// (shift 0 for memory bytes, 3 for table entries, 16 for memory pages), so
// a loop of large fills reaches $yield at every instruction, and small
// ones add up. One memory.fill or memory.copy of up to 4 GiB would still
// run to its end once charged, so those two are not charged here but
// replaced by helpers that charge chunk by chunk (see "Chunked fills and
// copies" in chunk.go); the others are bounded by the data and table caps.
//
// ChargeYield is the number of bulk bytes between two $yield calls.
const ChargeYield = 1 << 20

// SmallBulk is the most bytes a bulk instruction with a constant count may
// do uncharged. Compilers emit memory.copy and memory.fill with small
// constant counts for struct copies and zeroing, often in hot code; one of
// them costs no more than a few ordinary instructions, and a loop of them
// is bounded by the loop-header count (YieldMask+1 × SmallBulk bytes
// between checks), so they skip the $charge call.
const SmallBulk = 4096

// smallConstCount reports whether the count operand of a bulk instruction
// is a constant pushed by the instruction just before it (prev, in the same
// straight-line code, so it is the value on top of the stack) whose size in
// bytes is at most SmallBulk.
func smallConstCount(body []byte, prev wasmbin.Instr, shift byte) bool {
	if prev.Op != wasmbin.OpI32Const || prev.End <= prev.Offset+1 {
		return false
	}
	var v uint64
	for i, c := range body[prev.Offset+1 : prev.End] {
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c&0x80 != 0 {
			continue
		}
		if c&0x40 != 0 || i >= 4 { // negative, or large: a huge count when read unsigned
			return false
		}
		break
	}
	return v<<shift <= SmallBulk
}

// chargeSig is $charge's type: (count i32, shift i32) -> count i32.
var chargeSig = wasmbin.FuncType{Params: []wasmbin.ValType{wasmbin.I32, wasmbin.I32}, Results: []wasmbin.ValType{wasmbin.I32}}

// bulkShift reports whether in does work in proportion to its last
// operand, and the shift that converts that operand to bytes.
func bulkShift(in wasmbin.Instr) (byte, bool) {
	if in.Op == wasmbin.OpMemoryGrow {
		return 16, true
	}
	if in.Op != wasmbin.OpPrefixFC {
		return 0, false
	}
	switch in.Sub {
	case wasmbin.FCMemoryInit, wasmbin.FCMemoryCopy, wasmbin.FCMemoryFill:
		return 0, true
	case wasmbin.FCTableInit, wasmbin.FCTableCopy, wasmbin.FCTableGrow, wasmbin.FCTableFill:
		return 3, true
	}
	return 0, false
}

// hasBulk reports whether any function has a bulk instruction.
func hasBulk(m *wasmbin.Module) bool {
	for _, c := range m.Codes {
		for off := 0; off < len(c.Body); {
			in, err := wasmbin.DecodeInstr(c.Body, off)
			if err != nil {
				return false
			}
			if _, ok := bulkShift(in); ok {
				return true
			}
			off = in.End
		}
	}
	return false
}

// typeIndex returns the index of a type equal to t, appending it if there
// is none.
func typeIndex(types []wasmbin.FuncType, t wasmbin.FuncType) ([]wasmbin.FuncType, uint32) {
	for i, u := range types {
		if equalVals(u.Params, t.Params) && equalVals(u.Results, t.Results) {
			return types, uint32(i)
		}
	}
	return append(append([]wasmbin.FuncType(nil), types...), t), uint32(len(types))
}

func equalVals(a, b []wasmbin.ValType) bool {
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

// chargeBody is $charge (see "Bulk instructions").
func chargeBody(ix indices) []byte {
	b := wasmbin.AppendU32([]byte{wasmbin.OpGlobalGet}, ix.spent)
	b = append(b, wasmbin.OpLocalGet, 0, 0xad /* i64.extend_i32_u */, wasmbin.OpLocalGet, 1, 0xad, 0x86 /* i64.shl */, wasmbin.OpI64Add)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalSet), ix.spent)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalGet), ix.spent)
	b = wasmbin.AppendS64(append(b, wasmbin.OpI64Const), ChargeYield)
	b = append(b, 0x5a /* i64.ge_u */, wasmbin.OpIf, 0x40, wasmbin.OpI64Const, 0)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalSet), ix.spent)
	b = wasmbin.AppendU32(append(b, wasmbin.OpCall), ix.yield)
	return append(b, wasmbin.OpEnd, wasmbin.OpLocalGet, 0, wasmbin.OpEnd)
}

// keepNames carries the original's name section over, so traps and
// profiles name the guest's functions. No original index moved, so the
// names stay true; what the instrumenter appended gets names of its own
// (reserved prefix, never one the guest used). Names of indices the original
// did not have would land on appended functions or locals, so they go; label
// names go because the entry and loop checks add blocks, which renumbers
// labels. A name section wazero could not decode goes entirely: it would
// fail compilation, and names are only for people.
func keepNames(m *wasmbin.Module, ix indices, sections []wasmbin.Section) []wasmbin.Section {
	isNames := func(s wasmbin.Section) bool { return s.ID == wasmbin.SectionCustom && s.Name == "name" }
	var data []byte
	count := 0
	for _, c := range m.Customs {
		if c.Name == "name" {
			data = c.Data
			count++
		}
	}
	if count == 0 {
		return sections
	}
	names, err := wasmbin.DecodeNames(data)
	if err != nil || count > 1 {
		return wasmbin.RemoveSection(sections, isNames)
	}
	nf := m.NumFuncs()
	used := make(map[string]bool, len(names.Funcs))
	funcs := make([]wasmbin.NameAssoc, 0, len(names.Funcs)+1+len(m.Codes))
	orig := make(map[uint32]string, len(names.Funcs))
	for _, a := range names.Funcs {
		if a.Index < nf {
			funcs = append(funcs, a)
			used[a.Name] = true
			orig[a.Index] = a.Name
		}
	}
	unique := func(name string) string {
		for used[name] {
			name += "_"
		}
		used[name] = true
		return name
	}
	funcs = append(funcs, wasmbin.NameAssoc{Index: nf, Name: unique(abi.ReservedExportPrefix + "yield")})
	for i, re := range ix.reenter {
		if re == 0 {
			continue
		}
		idx := m.ImportedFuncs + uint32(i)
		of := orig[idx]
		if of == "" {
			of = strconv.FormatUint(uint64(idx), 10)
		}
		funcs = append(funcs, wasmbin.NameAssoc{Index: re, Name: unique(abi.ReservedExportPrefix + "reenter_" + of)})
	}
	names.Funcs = funcs

	var locals []wasmbin.IndirectNameAssoc
	for _, l := range names.Locals {
		if l.Index < m.ImportedFuncs || l.Index >= nf {
			continue
		}
		n := numLocals(m, l.Index-m.ImportedFuncs)
		kept := l.Names[:0:0]
		for _, a := range l.Names {
			if uint64(a.Index) < n {
				kept = append(kept, a)
			}
		}
		locals = append(locals, wasmbin.IndirectNameAssoc{Index: l.Index, Names: kept})
	}
	if names.Locals != nil {
		names.Locals = locals
	}
	other := names.Other[:0:0]
	for _, o := range names.Other {
		if o.ID != wasmbin.NameLabels {
			other = append(other, o)
		}
	}
	names.Other = other
	out := append([]wasmbin.Section(nil), sections...)
	for i, s := range out {
		if isNames(s) {
			out[i] = wasmbin.CustomSection("name", names.Encode())
		}
	}
	return out
}

// numLocals is the number of parameters and locals of defined function i in
// the original module.
func numLocals(m *wasmbin.Module, i uint32) uint64 {
	n := uint64(len(m.Types[m.Funcs[i]].Params))
	for _, l := range m.Codes[i].Locals {
		n += uint64(l.Count)
	}
	return n
}

// hasLoop reports whether a (parsed, so decodable) body contains a loop.
func hasLoop(body []byte) bool {
	for off := 0; off < len(body); {
		in, err := wasmbin.DecodeInstr(body, off)
		if err != nil {
			return false
		}
		if in.Op == wasmbin.OpLoop {
			return true
		}
		off = in.End
	}
	return false
}
