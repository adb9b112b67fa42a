package instrument

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// FuzzInstrument: whatever Parse and the ABI's feature check accept, wazero
// compiles; for whatever Parse accepts, Instrument does not panic;
// when it succeeds its output parses again and exports what Result names;
// and when wazero accepts the original, it accepts the derived module too.
func FuzzInstrument(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../abi/testdata/*.wasm")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil && len(b) <= 64<<10 {
			f.Add(b, uint32(0))
			f.Add(b, uint32(2))
		}
	}
	f.Add(wasmbin.Encode(nil), uint32(1))
	// A malformed name section: valid wasm, read by wazero anyway.
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00/\x04name"+strings.Repeat("0", 42)), uint32(0))
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithCoreFeatures(CoreFeatures))
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, b []byte, maxPages uint32) {
		pm, err := wasmbin.Parse(b)
		if err != nil {
			return
		}
		// What wasmesh accepts, wazero compiles: the original (unless its
		// name section is malformed — a custom section, valid wasm, that
		// wazero reads anyway; wasmesh never compiles the original and
		// drops such a section when it instruments) and, below, always
		// the derived module.
		if len(abi.FeatureProblems(pm)) == 0 && namesDecodable(pm) {
			c, err := r.CompileModule(ctx, b)
			if err != nil {
				t.Fatalf("wasmesh accepts a module wazero refuses: %v", err)
			}
			c.Close(ctx)
		}
		// A module the validator accepts as a daemon must instrument and
		// compile.
		_, verr := abi.Validate(b)
		accepted := verr == nil
		res, err := Instrument(b, Options{MaxMemoryPages: maxPages})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if accepted && errors.Is(err, ErrUnsupported) {
				t.Fatalf("wasmesh accepts a module its instrumenter refuses: %v", err)
			}
			return
		}
		if accepted {
			c, err := r.CompileModule(ctx, res.Module)
			if err != nil {
				t.Fatalf("the instrumentation of an accepted module does not compile: %v", err)
			}
			c.Close(ctx)
		}
		m, err := wasmbin.Parse(res.Module)
		if err != nil {
			t.Fatalf("instrumented module does not parse: %v", err)
		}
		names := map[string]bool{}
		for _, e := range m.Exports {
			names[e.Name] = true
		}
		for _, g := range res.Globals {
			if !names[g.Export] {
				t.Fatalf("global export %q missing", g.Export)
			}
		}
		if !names[res.StopExport] || res.TablesDirtyExport != "" && !names[res.TablesDirtyExport] {
			t.Fatal("flag exports missing")
		}
		if c, err := r.CompileModule(ctx, b); err == nil {
			c.Close(ctx)
			c2, err := r.CompileModule(ctx, res.Module)
			if err != nil {
				t.Fatalf("wazero accepts the original but not the instrumented module: %v", err)
			}
			c2.Close(ctx)
		}
	})
}

// namesDecodable: every "name" custom section of m decodes.
func namesDecodable(m *wasmbin.Module) bool {
	for _, c := range m.Customs {
		if c.Name == "name" {
			if _, err := wasmbin.DecodeNames(c.Data); err != nil {
				return false
			}
		}
	}
	return true
}
