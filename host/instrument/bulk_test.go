package instrument

import (
	"context"
	"strings"
	"testing"
)

// TestBulkChargeStops: with the stop flag set, one memory.fill or
// memory.copy of ChargeYield bytes or more traps before it writes anything,
// in a function with no loop and a single entry check (which passes: the
// fuel count is far from YieldMask+1), so the charge alone stops it.
func TestBulkChargeStops(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/bulk.wasm"), Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			m := instantiate(t, r, res.Module, "bulk")
			stop := mutable(t, m, res.StopExport)
			stop.Set(1)
			if _, err := m.ExportedFunction("fill").Call(context.Background(), ChargeYield); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("fill(ChargeYield) with the flag set: %v", err)
			}
			if b, ok := m.Memory().ReadByte(0); !ok || b != 0 {
				t.Fatalf("memory[0] = %d after a stopped fill, want 0 (nothing written)", b)
			}
			if _, err := m.ExportedFunction("copy").Call(context.Background(), 64<<20); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("copy(64 MiB) with the flag set: %v", err)
			}
			stop.Set(0)
			if got := call(t, m, "fill", 32<<20)[0]; got != 32<<20 {
				t.Fatalf("fill(32 MiB) after the stop = %d", got)
			}
			if b, _ := m.Memory().ReadByte(32<<20 - 1); b != 7 {
				t.Fatalf("memory[32 MiB-1] = %d after fill, want 7", b)
			}
		})
	}
}
