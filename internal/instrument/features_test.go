package instrument

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// featureModule is a module of one function of type () -> () whose body is
// instrs (the final end added), with a one-page memory, a funcref table of
// one element, a passive data segment and extra sections.
func featureModule(instrs []byte, extra ...wasmbin.Section) []byte {
	secs := []wasmbin.Section{
		wasmbin.TypeSection([]wasmbin.FuncType{{}, {Params: []wasmbin.ValType{wasmbin.I32}, Results: []wasmbin.ValType{wasmbin.I32, wasmbin.I32}}}),
		wasmbin.FunctionSection([]uint32{0}),
		wasmbin.TableSection([]wasmbin.TableType{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Min: 1}}}),
		wasmbin.MemorySection([]wasmbin.Limits{{Min: 1}}),
		wasmbin.ExportSection([]wasmbin.Export{{Name: "f", Kind: wasmbin.KindFunc}}),
		wasmbin.DataCountSection(1),
		wasmbin.CodeSection([]wasmbin.Code{{Body: append(append([]byte(nil), instrs...), wasmbin.OpEnd)}}),
		wasmbin.DataSection([]wasmbin.Data{{Mode: wasmbin.ModePassive, Init: []byte{1}}}),
	}
	for _, e := range extra {
		secs = wasmbin.SetSection(secs, e)
	}
	return wasmbin.Encode(secs)
}

// TestFeatureAgreement: for every feature the parser knows, wasmesh accepts
// a module using it exactly when wazero, configured as the host configures
// it (CoreFeatures), compiles it; an accepted module's instrumented form
// compiles and runs under the compiler; a refused one is refused with a
// reason (wasmbin.ErrUnsupported, or a problem abi.Inspect lists).
func TestFeatureAgreement(t *testing.T) {
	const i32c0 = wasmbin.OpI32Const
	cases := []struct {
		feature string
		module  []byte
		want    bool
		reason  string // what the refusal names
	}{
		{"mvp", featureModule([]byte{i32c0, 0, wasmbin.OpI32Const, 1, 0x36, 2, 0}), true, ""},
		{"sign extension", featureModule([]byte{i32c0, 0, 0xc0, wasmbin.OpDrop}), true, ""},
		{"saturating truncation", featureModule([]byte{wasmbin.OpF32Const, 0, 0, 0, 0, 0xfc, 0, wasmbin.OpDrop}), true, ""},
		{"multi-value", featureModule([]byte{i32c0, 1, wasmbin.OpBlock, 1, i32c0, 2, wasmbin.OpEnd, wasmbin.OpDrop, wasmbin.OpDrop}), true, ""},
		{"bulk memory", featureModule([]byte{i32c0, 0, i32c0, 0, i32c0, 0, 0xfc, 8, 0, 0, 0xfc, 9, 0, i32c0, 0, i32c0, 0, i32c0, 0, 0xfc, 11, 0}), true, ""},
		{"reference types", featureModule([]byte{wasmbin.OpRefNull, 0x70, wasmbin.OpRefIsNull, wasmbin.OpDrop, i32c0, 0, wasmbin.OpTableGet, 0, wasmbin.OpDrop}), true, ""},
		{"simd", featureModule(append(append([]byte{wasmbin.OpPrefixFD, 0x0c}, make([]byte, 16)...), wasmbin.OpDrop)), true, ""},
		{"tail calls", featureModule([]byte{wasmbin.OpReturnCall, 0}), true, ""},
		{"extended const", featureModule(nil, wasmbin.GlobalSection([]wasmbin.Global{{Type: wasmbin.GlobalType{Type: wasmbin.I32},
			Init: []byte{i32c0, 1, i32c0, 2, wasmbin.OpI32Add, wasmbin.OpEnd}}})), true, ""},

		{"threads (atomics)", featureModule([]byte{i32c0, 0, wasmbin.OpPrefixFE, 0x10, 2, 0, wasmbin.OpDrop}), false, "threads"},
		{"threads (shared memory)", featureModule(nil, wasmbin.MemorySection([]wasmbin.Limits{{Min: 1, Max: 1, HasMax: true, Shared: true}})), false, "shared memory"},
		{"memory64", featureModule(nil, wasmbin.MemorySection([]wasmbin.Limits{{Min: 1, Memory64: true}})), false, "memory64"},
		{"multi-memory (two memories)", featureModule(nil, wasmbin.MemorySection([]wasmbin.Limits{{Min: 1}, {Min: 1}})), false, "2 memories"},
		{"multi-memory (memarg index)", featureModule([]byte{i32c0, 0, 0x28, 0x42, 0, 0, wasmbin.OpDrop}), false, "multi-memory"},
		{"exceptions", featureModule([]byte{0x06, 0x40, wasmbin.OpEnd}), false, "exception handling"},
		{"exception tags", featureModule(nil, wasmbin.Section{ID: wasmbin.SectionTag, Payload: []byte{0}, Offset: -1, PayloadOffset: -1}), false, "exception handling"},
		{"typed function references", featureModule([]byte{wasmbin.OpRefFunc, 0, 0x14, 0}), false, "typed function references"},
		{"gc", featureModule([]byte{0xfb, 0x1c, wasmbin.OpDrop}), false, "GC"},
		{"relaxed simd", featureModule([]byte{wasmbin.OpPrefixFD, 0x80, 0x02}), false, "relaxed SIMD"},
		{"table64", featureModule(nil, wasmbin.TableSection([]wasmbin.TableType{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Min: 1, Memory64: true}}})), false, "64-bit table"},
	}
	ctx := context.Background()
	check := newRuntime(t, wazero.NewRuntimeConfigCompiler())
	for _, c := range cases {
		t.Run(c.feature, func(t *testing.T) {
			_, compileErr := check.CompileModule(ctx, c.module)
			if compiled := compileErr == nil; compiled != c.want {
				t.Fatalf("wazero with CoreFeatures compiles it: %v (%v), want %v", compiled, compileErr, c.want)
			}
			m, parseErr := wasmbin.Parse(c.module)
			var problems []abi.Problem
			if parseErr == nil {
				problems = abi.FeatureProblems(m)
			}
			accepted := parseErr == nil && len(problems) == 0
			if accepted != c.want {
				t.Fatalf("wasmesh accepts it: %v (parse %v, problems %v), want %v", accepted, parseErr, problems, c.want)
			}
			if !accepted {
				if parseErr != nil && !errors.Is(parseErr, wasmbin.ErrUnsupported) {
					t.Errorf("refused as malformed, not unsupported: %v", parseErr)
				}
				why := fmt.Sprint(parseErr, problems)
				if !strings.Contains(why, c.reason) {
					t.Errorf("refusal %q does not name %q", why, c.reason)
				}
				if _, err := Instrument(c.module, Options{}); err == nil {
					t.Error("Instrument accepts it")
				}
				return
			}
			res := mustInstrument(t, c.module, Options{})
			r := newRuntime(t, wazero.NewRuntimeConfigCompiler())
			mod := instantiate(t, r, res.Module, "m")
			if c.feature == "tail calls" {
				return // f tail-calls itself forever; TestStopFlagPreempts stops such a guest
			}
			if _, err := mod.ExportedFunction("f").Call(ctx); err != nil {
				t.Errorf("instrumented: %v", err)
			}
		})
	}
}
