package instrument

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// maxDepth runs fn of the instance newInstance returns until the stack overflows and
// returns how deep it got (the function counts its frames in the exported
// global "depth").
func maxDepth(t *testing.T, newInstance func() api.Module, fn string, args ...uint64) uint64 {
	t.Helper()
	m := newInstance()
	_, err := m.ExportedFunction(fn).Call(context.Background(), args...)
	if err == nil || !strings.Contains(err.Error(), "stack overflow") {
		t.Fatalf("%s: want a stack overflow, got %v", fn, err)
	}
	return m.ExportedGlobal("depth").Get()
}

// TestRecursionDepthFidelity: the instrumented module reaches (almost) the
// same recursion depth as the original before the stack overflows. The
// entry check must not grow a frame: a prologue that calls $yield and
// returns made wazero's compiler keep the context registers in stack slots,
// which halved the depth of the smallest frame.
func TestRecursionDepthFidelity(t *testing.T) {
	orig := readFile(t, "testdata/recurse.wasm")
	res := mustInstrument(t, orig, Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for _, c := range []struct {
				fn   string
				args []uint64
				goal float64 // 0: reported only
			}{{"bare", nil, 0.95}, {"arg", []uint64{0}, 0.95}, {"cond", []uint64{1 << 31}, 0.95}, {"loopy", []uint64{0}, 0}} {
				var depth [2]uint64
				for i, bin := range [][]byte{orig, res.Module} {
					depth[i] = maxDepth(t, func() api.Module {
						return instantiate(t, newRuntime(t, e.cfg()), bin, "m")
					}, c.fn, c.args...)
				}
				ratio := float64(depth[1]) / float64(depth[0])
				t.Logf("%s: original %d frames, instrumented %d (%.3f)", c.fn, depth[0], depth[1], ratio)
				if depth[0] < 1000 {
					t.Fatalf("%s: the original overflowed at depth %d: the test measures nothing", c.fn, depth[0])
				}
				if ratio < c.goal {
					t.Errorf("%s: instrumented depth is %.1f%% of the original's, want >= %.0f%%", c.fn, 100*ratio, 100*c.goal)
				}
			}
		})
	}
}
