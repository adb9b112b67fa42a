// Package instrument derives the module the host actually runs from a
// guest's original module. The derived module
//
//   - exports every mutable global under a reserved name, so transparent
//     snapshots can read and restore state the guest never exported (wazero
//     gives the host only exported globals);
//   - checks a stop flag at every function entry and every loop header, so
//     the host can preempt a runaway guest from another goroutine at the
//     cost of one load and one predictable branch per check;
//   - sets a tables-dirty flag before any instruction that changes a table or
//     an element segment, so a transparent snapshot can refuse a daemon whose
//     tables no longer match what instantiation builds;
//   - caps the memory maximum at the host's limit.
//
// The derived module adds globals and exports only: no import, function,
// type or table is added, so no existing index shifts and every branch,
// call and element segment stays valid. The daemon kind's identity is the
// digest of the original bytes, never of the derived ones.
//
// # Preemption
//
// Each check is
//
//	global.get $stop
//	if
//	  unreachable
//	end
//
// where $stop is a new mutable i32 global (appended after the module's own,
// so no index shifts) exported as abi.ReservedExportPrefix+"stop". The host's
// watchdog sets it to 1 through wazero's api.MutableGlobal from another
// goroutine; the guest traps with "unreachable" at its next loop iteration or
// call. wazero's optimizing compiler keeps a global's value in a register only
// within a straight-line run of blocks; a loop header has two predecessors
// (entry and back edge), so the flag is reloaded from memory on every
// iteration, and a function entry always loads it. The host must tell such a
// trap from a genuine unreachable by its own flag, reset the flag to 0, and
// roll the daemon back, as for any failed event.
package instrument

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/abi/wasmbin"
)

// Reserved export names the derived module adds.
var (
	StopExport        = abi.ReservedExportPrefix + "stop"
	TablesDirtyExport = abi.ReservedExportPrefix + "tables_dirty"
)

// GlobalExportName is the reserved export name of global idx.
func GlobalExportName(idx uint32) string {
	return abi.ReservedExportPrefix + "g" + strconv.FormatUint(uint64(idx), 10)
}

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
	if mem != nil {
		res.MemoryMin = uint32(mem.Min)
		res.MemoryMax = MaxPages
		if mem.HasMax {
			res.MemoryMax = uint32(mem.Max)
		}
		if changed {
			sections = wasmbin.SetSection(sections, wasmbin.MemorySection([]wasmbin.Limits{*mem}))
		}
	}

	stop := m.NumGlobals()
	dirty := stop + 1
	codes, usesTables, err := rewriteCode(m, stop, dirty)
	if err != nil {
		return nil, err
	}
	newGlobals := append(append([]wasmbin.Global(nil), m.Globals...),
		wasmbin.Global{Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true}, Init: wasmbin.ConstI32(0)})
	exports := append([]wasmbin.Export(nil), m.Exports...)
	for _, g := range globals {
		exports = append(exports, wasmbin.Export{Name: g.Export, Kind: wasmbin.KindGlobal, Index: g.Index})
	}
	exports = append(exports, wasmbin.Export{Name: StopExport, Kind: wasmbin.KindGlobal, Index: stop})
	if usesTables {
		newGlobals = append(newGlobals,
			wasmbin.Global{Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true}, Init: wasmbin.ConstI32(0)})
		exports = append(exports, wasmbin.Export{Name: TablesDirtyExport, Kind: wasmbin.KindGlobal, Index: dirty})
		res.TablesDirtyExport = TablesDirtyExport
	}
	sections = wasmbin.SetSection(sections, wasmbin.GlobalSection(newGlobals))
	sections = wasmbin.SetSection(sections, wasmbin.ExportSection(exports))
	if len(codes) > 0 {
		sections = wasmbin.SetSection(sections, wasmbin.CodeSection(codes))
	}
	// The name section describes the original module; drop it rather than
	// keep a description of code that changed.
	sections = wasmbin.RemoveSection(sections, func(s wasmbin.Section) bool {
		return s.ID == wasmbin.SectionCustom && s.Name == "name"
	})
	res.Module = wasmbin.Encode(sections)
	return res, nil
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

// rewriteCode inserts the stop check at every function entry and loop
// header, and the dirty flag before every table mutation.
func rewriteCode(m *wasmbin.Module, stop, dirty uint32) ([]wasmbin.Code, bool, error) {
	check := append(wasmbin.AppendU32([]byte{wasmbin.OpGlobalGet}, stop),
		wasmbin.OpIf, 0x40, wasmbin.OpUnreachable, wasmbin.OpEnd)
	mark := append([]byte{wasmbin.OpI32Const, 1}, wasmbin.AppendU32([]byte{wasmbin.OpGlobalSet}, dirty)...)
	usesTables := false
	codes := make([]wasmbin.Code, len(m.Codes))
	for i, c := range m.Codes {
		body := c.Body
		out := make([]byte, 0, len(body)+len(check)+len(body)/8)
		out = append(out, check...)
		copied := 0
		for off := 0; off < len(body); {
			in, err := wasmbin.DecodeInstr(body, off)
			if err != nil { // Parse already decoded every body
				return nil, false, fmt.Errorf("instrument: function %d: %w", int(m.ImportedFuncs)+i, err)
			}
			switch {
			case in.Op == wasmbin.OpLoop:
				out = append(out, body[copied:in.End]...)
				out = append(out, check...)
				copied = in.End
			case in.IsTableMutation():
				usesTables = true
				out = append(out, body[copied:in.Offset]...)
				out = append(out, mark...)
				copied = in.Offset
			}
			off = in.End
		}
		out = append(out, body[copied:]...)
		codes[i] = wasmbin.Code{Locals: c.Locals, Body: out}
	}
	return codes, usesTables, nil
}
