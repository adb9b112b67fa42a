package instrument

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
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
			if _, err := m.ExportedFunction("copy").Call(context.Background(), 32<<20); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("copy(32 MiB) with the flag set: %v", err)
			}
			// Bounds come first, as in the native instruction: an
			// out-of-bounds copy traps as such, flag or not.
			if _, err := m.ExportedFunction("copy").Call(context.Background(), 64<<20); err == nil || !strings.Contains(err.Error(), "out of bounds memory access") {
				t.Fatalf("copy(64 MiB), out of bounds, with the flag set: %v", err)
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

// TestSmallConstCount: only a constant count of at most SmallBulk bytes,
// pushed right before the instruction, skips the charge.
func TestSmallConstCount(t *testing.T) {
	for _, c := range []struct {
		count int32
		shift byte
		small bool
	}{
		{0, 0, true}, {16, 0, true}, {SmallBulk, 0, true}, {SmallBulk + 1, 0, false},
		{-1, 0, false}, {1 << 30, 0, false}, {512, 3, true}, {513, 3, false},
		{0, 16, true}, {1, 16, false},
	} {
		body := wasmbin.AppendS32([]byte{wasmbin.OpI32Const}, c.count)
		body = append(body, wasmbin.OpPrefixFC, byte(wasmbin.FCMemoryFill), 0)
		prev, err := wasmbin.DecodeInstr(body, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := smallConstCount(body, prev, c.shift); got != c.small {
			t.Errorf("count %d shift %d: small = %v, want %v", c.count, c.shift, got, c.small)
		}
	}
	// Not a constant: charged.
	body := []byte{wasmbin.OpLocalGet, 0, wasmbin.OpPrefixFC, byte(wasmbin.FCMemoryFill), 0}
	prev, _ := wasmbin.DecodeInstr(body, 0)
	if smallConstCount(body, prev, 0) {
		t.Error("local.get count treated as a small constant")
	}
}
