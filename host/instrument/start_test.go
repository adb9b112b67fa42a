package instrument

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/abi/wasmbin"
)

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
