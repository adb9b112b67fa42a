package abi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// ErrRefused is matched (errors.Is) by every error Validate returns: the
// module cannot be deployed.
var ErrRefused = errors.New("module refused")

// ErrMalformed is matched by errors for bytes that are not a parseable wasm
// module (it is wasmbin.ErrMalformed).
var ErrMalformed = wasmbin.ErrMalformed

// Snapshot modes.
const (
	ModeTransparent = "transparent"
	ModeCooperative = "cooperative"
)

// ModuleInfo describes a module as the ABI sees it.
type ModuleInfo struct {
	// Digest is "sha256:<hex>" of the module bytes: the daemon kind's
	// identity.
	Digest string `json:"digest"`
	// ABIVersion is 1 when the module exports the wasmesh_abi_v1 marker, else 0.
	ABIVersion int `json:"abi_version"`
	// Mode is ModeCooperative when the guest exports both wasmesh_snapshot
	// and wasmesh_restore, else ModeTransparent.
	Mode          string   `json:"mode"`
	Exports       []Export `json:"exports"`
	Imports       []Import `json:"imports"`
	Memory        Memory   `json:"memory"`
	HasInitialize bool     `json:"has_initialize"`
	HasInit       bool     `json:"has_init"`
	UsesWASI      bool     `json:"uses_wasi"`
	// Problems lists every reason the module is refused; empty when it is
	// deployable.
	Problems []Problem `json:"problems,omitempty"`
}

// Export is one export of the module.
type Export struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // func, table, memory, global
	// Signature of a function ("(i32) -> i32"); the value type of a global
	// ("i32", "mut i64"); empty otherwise.
	Signature string `json:"signature,omitempty"`
}

// Import is one import of the module.
type Import struct {
	Module    string `json:"module"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Signature string `json:"signature,omitempty"`
}

// Memory is the module's linear memory in 64 KiB pages (the first memory,
// defined or imported; zero when there is none).
type Memory struct {
	Min    uint32 `json:"min"`
	Max    uint32 `json:"max"`
	HasMax bool   `json:"has_max"`
}

// Problem is one reason a module is refused: the offending export, import
// or section, and why.
type Problem struct {
	Item   string `json:"item"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return p.Item + ": " + p.Reason }

// RefusalError is returned by Validate for a parseable module that breaks
// the ABI. It lists every problem, not just the first.
type RefusalError struct {
	Problems []Problem
}

func (e *RefusalError) Error() string {
	if len(e.Problems) == 0 {
		return ErrRefused.Error()
	}
	s := "module refused: " + e.Problems[0].String()
	switch n := len(e.Problems) - 1; n {
	case 0:
	case 1:
		s += " (and 1 more problem)"
	default:
		s += fmt.Sprintf(" (and %d more problems)", n)
	}
	return s
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

// ReactorHint tells guest authors how to build a module without _start.
const ReactorHint = "build a reactor, not a command: " +
	"Go: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared; " +
	"C/C++ (clang): -mexec-model=reactor, or -nostdlib -Wl,--no-entry; " +
	"Rust: crate-type = [\"cdylib\"]; Zig: zig build-lib -dynamic; " +
	"AssemblyScript: do not pass --exportStart. " +
	"wasmesh calls _initialize itself when it is exported"

// Validate inspects a module and refuses it when it breaks ABI v1. Unparseable
// bytes give an error matching both ErrRefused and ErrMalformed (or
// wasmbin.ErrUnsupported); an ABI violation gives a *RefusalError. The
// ModuleInfo is returned whenever the bytes parse.
func Validate(module []byte) (*ModuleInfo, error) {
	info, err := Inspect(module)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if len(info.Problems) > 0 {
		return info, &RefusalError{Problems: info.Problems}
	}
	return info, nil
}

// Inspect describes a module and lists every ABI problem in
// ModuleInfo.Problems. It fails only when the bytes are not a parseable wasm
// module.
func Inspect(module []byte) (*ModuleInfo, error) {
	m, err := wasmbin.Parse(module)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(module)
	info := &ModuleInfo{
		Digest:  "sha256:" + hex.EncodeToString(sum[:]),
		Mode:    ModeTransparent,
		Exports: []Export{},
		Imports: []Import{},
	}
	v := validator{m: m, info: info}
	v.limits()
	v.imports()
	v.memory()
	v.exports()
	return info, nil
}

type validator struct {
	m    *wasmbin.Module
	info *ModuleInfo
}

func (v *validator) problem(item, format string, args ...any) {
	v.info.Problems = append(v.info.Problems, Problem{Item: item, Reason: fmt.Sprintf(format, args...)})
}

func signature(ft wasmbin.FuncType) Signature {
	s := Signature{Params: make([]ValType, len(ft.Params)), Results: make([]ValType, len(ft.Results))}
	for i, t := range ft.Params {
		s.Params[i] = ValType(t)
	}
	for i, t := range ft.Results {
		s.Results[i] = ValType(t)
	}
	return s
}

func globalString(g wasmbin.GlobalType) string {
	if g.Mutable {
		return "mut " + ValType(g.Type).String()
	}
	return ValType(g.Type).String()
}

func hostFunctionNames() string {
	return strings.Join([]string{ImportEmit, ImportFail, ImportLog, ImportStateWrite, ImportNow, ImportRandom, ImportSelf, ImportPublish, ImportSend}, ", ")
}

func (v *validator) imports() {
	for _, im := range v.m.Imports {
		item := fmt.Sprintf("import %s.%s", echoBare(im.Module), echoBare(im.Name))
		out := Import{Module: im.Module, Name: im.Name, Kind: im.Kind.String()}
		if im.Module == WASIModule {
			v.info.UsesWASI = true
		}
		switch im.Kind {
		case wasmbin.KindFunc:
			got := signature(v.m.Types[im.TypeIndex])
			out.Signature = got.String()
			v.importedFunc(item, im, got)
		case wasmbin.KindMemory:
			v.problem(item, "memory imports are not allowed: define the memory in the module and export it as %q", ExportMemory)
		case wasmbin.KindTable:
			v.problem(item, "table imports are not allowed: the host provides no tables")
		case wasmbin.KindGlobal:
			out.Signature = globalString(im.Global)
			v.problem(item, "global imports are not allowed: the host provides no globals")
		}
		v.info.Imports = append(v.info.Imports, out)
	}
}

func (v *validator) importedFunc(item string, im wasmbin.Import, got Signature) {
	switch im.Module {
	case ImportModule:
		want, ok := ImportSignature(im.Name)
		if !ok {
			v.problem(item, "unknown host function: module %q provides only %s", ImportModule, hostFunctionNames())
		} else if !want.Equal(got) {
			v.problem(item, "wrong signature: expected %s, got %s", want, got)
		}
	case WASIModule:
		want, ok := WASISignature(im.Name)
		if !ok {
			v.problem(item, "WASI function outside the allowed subset (no filesystem, no sockets, no processes)")
		} else if !want.Equal(got) {
			v.problem(item, "wrong signature: expected %s, got %s", want, got)
		}
	default:
		v.problem(item, "imports from module %s are not allowed: an ABI v1 guest may import only from %q and the allowed %s subset", Echo(im.Module), ImportModule, WASIModule)
	}
}

func (v *validator) memory() {
	mems := memories(v.m)
	v.info.Problems = append(v.info.Problems, FeatureProblems(v.m)...)
	if len(mems) > 0 {
		l := mems[0]
		v.info.Memory = Memory{Min: clampPages(l.Min), Max: clampPages(l.Max), HasMax: l.HasMax}
	}
}

func clampPages(n uint64) uint32 {
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}

func (v *validator) exports() {
	byName := map[string]wasmbin.Export{}
	for _, e := range v.m.Exports {
		byName[e.Name] = e
		out := Export{Name: e.Name, Kind: e.Kind.String()}
		switch e.Kind {
		case wasmbin.KindFunc:
			if ft, ok := v.m.FuncType(e.Index); ok {
				out.Signature = signature(ft).String()
			}
		case wasmbin.KindGlobal:
			if gt, ok := v.m.GlobalType(e.Index); ok {
				out.Signature = globalString(gt)
			}
		}
		v.info.Exports = append(v.info.Exports, out)
	}

	// memory
	if e, ok := byName[ExportMemory]; !ok {
		v.problem(ExportMemory, "missing required export: the module must export its linear memory as %q", ExportMemory)
	} else if e.Kind != wasmbin.KindMemory {
		v.problem(ExportMemory, "exported as a %s; it must be the module's memory", e.Kind)
	}

	// ABI functions, required then optional.
	for _, name := range []string{ExportMarker, ExportInput, ExportProcess} {
		if _, ok := byName[name]; !ok {
			v.problem(name, "missing required export (signature %s)", mustExportSig(name))
		}
	}
	has := map[string]bool{}
	for _, name := range []string{ExportMarker, ExportInput, ExportProcess, ExportInit, ExportSnapshot, ExportRestore, ExportInitialize} {
		e, ok := byName[name]
		if !ok {
			continue
		}
		want := mustExportSig(name)
		if e.Kind != wasmbin.KindFunc {
			v.problem(name, "exported as a %s; it must be a function %s", e.Kind, want)
			continue
		}
		has[name] = true
		ft, _ := v.m.FuncType(e.Index)
		if got := signature(ft); !got.Equal(want) {
			v.problem(name, "wrong signature: expected %s, got %s", want, got)
		}
	}
	if has[ExportMarker] {
		v.info.ABIVersion = Version
	}
	v.info.HasInit = has[ExportInit]
	v.info.HasInitialize = has[ExportInitialize]
	switch {
	case has[ExportSnapshot] && has[ExportRestore]:
		v.info.Mode = ModeCooperative
	case has[ExportSnapshot]:
		v.problem(ExportSnapshot, "exported without %s: cooperative snapshots need both (export neither for transparent snapshots)", ExportRestore)
	case has[ExportRestore]:
		v.problem(ExportRestore, "exported without %s: cooperative snapshots need both (export neither for transparent snapshots)", ExportSnapshot)
	}

	if _, ok := byName[ExportStart]; ok {
		v.problem(ExportStart, "%s", ReactorHint)
	}
	for _, e := range v.m.Exports {
		if strings.HasPrefix(e.Name, ReservedExportPrefix) {
			v.problem(echoBare(e.Name), "export names starting with %q are reserved for the host", ReservedExportPrefix)
		}
	}
}

func mustExportSig(name string) Signature {
	s, ok := ExportSignature(name)
	if !ok {
		panic("abi: no signature for export " + name)
	}
	return s
}

func memories(m *wasmbin.Module) []wasmbin.Limits {
	var mems []wasmbin.Limits
	for _, im := range m.Imports {
		if im.Kind == wasmbin.KindMemory {
			mems = append(mems, im.Memory)
		}
	}
	return append(mems, m.Memories...)
}

// FeatureProblems lists the features of a parsed module that wasmesh does
// not run although the parser reads them: several memories (multi-memory),
// 64-bit memories and shared memories (threads). wasmbin.Parse refuses every
// other feature outside WebAssembly 2.0, tail calls and extended constant
// expressions itself (wasmbin.ErrUnsupported). A module that parses and has
// no feature problem compiles under the wazero configuration the host uses
// (internal/instrument.CoreFeatures); the spec-suite test holds both sides to it.
func FeatureProblems(m *wasmbin.Module) []Problem {
	var out []Problem
	mems := memories(m)
	if len(mems) > 1 {
		out = append(out, Problem{Item: "memory", Reason: fmt.Sprintf("the module has %d memories; ABI v1 allows exactly one", len(mems))})
	}
	for i, l := range mems {
		item := "memory"
		if len(mems) > 1 {
			item = fmt.Sprintf("memory %d", i)
		}
		if l.Memory64 {
			out = append(out, Problem{Item: item, Reason: "64-bit memory (memory64) is not supported"})
		}
		if l.Shared {
			out = append(out, Problem{Item: item, Reason: "shared memory (threads) is not supported"})
		}
	}
	return out
}
