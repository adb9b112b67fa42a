package instrument

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/abi/wasmbin"
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
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithCoreFeatures(CoreFeatures))
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, b []byte, maxPages uint32) {
		pm, err := wasmbin.Parse(b)
		if err != nil {
			return
		}
		// What wasmesh accepts, wazero compiles.
		if len(abi.FeatureProblems(pm)) == 0 {
			c, err := r.CompileModule(ctx, b)
			if err != nil {
				t.Fatalf("wasmesh accepts a module wazero refuses: %v", err)
			}
			c.Close(ctx)
		}
		res, err := Instrument(b, Options{MaxMemoryPages: maxPages})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
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
