package instrument

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// instantiateLikeHost instantiates a derived module as the host does: then
// it calls the former start function, and a failure there is a failed
// instantiation, worded as wazero words a failed start function. res is
// nil when the module was not instrumented.
func instantiateLikeHost(ctx context.Context, r wazero.Runtime, orig []byte, res *Result, derived []byte, name string) (api.Module, error) {
	m, err := r.InstantiateWithConfig(ctx, derived, wazero.NewModuleConfig().WithName(name))
	if err != nil || res == nil || res.StartExport == "" {
		return m, err
	}
	if _, err := m.ExportedFunction(res.StartExport).Call(ctx); err != nil {
		_ = m.Close(ctx)
		p, perr := wasmbin.Parse(orig)
		if perr != nil || p.Start == nil {
			return nil, fmt.Errorf("start function failed: %w", err)
		}
		return nil, fmt.Errorf("start function[%d] failed: %w", *p.Start, err)
	}
	return m, nil
}

// The derived module has no start section (wazero would run it inside
// instantiation, out of the host's reach); the start function is exported
// instead and stops on the flag like any other function.
func TestStartSectionBecomesStopableExport(t *testing.T) {
	orig := readFile(t, filepath.Join("..", "..", "plugins", "examples", "testdata", "start_loop.wasm"))
	if m, err := wasmbin.Parse(orig); err != nil || m.Start == nil {
		t.Fatalf("fixture has no start section (%v)", err)
	}
	res := mustInstrument(t, orig, Options{})
	m, err := wasmbin.Parse(res.Module)
	if err != nil {
		t.Fatal(err)
	}
	if m.Start != nil || m.Section(wasmbin.SectionStart) != nil {
		t.Fatalf("derived module keeps a start section")
	}
	if res.StartExport != StartExport {
		t.Fatalf("StartExport = %q, want %q", res.StartExport, StartExport)
	}
	r := newRuntime(t, engines[0].cfg())
	inst := instantiate(t, r, res.Module, "start_loop")
	done := make(chan error, 1)
	go func() {
		_, err := inst.ExportedFunction(res.StartExport).Call(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the looping start function returned before the flag was set: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	mutable(t, inst, res.StopExport).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("start function: want an unreachable trap, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("start function still running 5s after the stop flag was set")
	}

	none := mustInstrument(t, readFile(t, "testdata/spin.wasm"), Options{})
	if none.StartExport != "" {
		t.Fatalf("module without a start section got StartExport %q", none.StartExport)
	}
}
