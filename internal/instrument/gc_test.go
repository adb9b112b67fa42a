package instrument

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

const gcHelperEnv = "WASMESH_INSTRUMENT_GC_HELPER"

// TestGCWhileGuestSpins is the reason for the yield points: a garbage
// collection started while a guest spins must finish, and the stop flag set
// afterwards must still stop the guest. A regression hangs the whole process
// (the collector waits for the spinning goroutine, every other goroutine is
// frozen), so the check runs in a child process that the test kills after a
// deadline.
func TestGCWhileGuestSpins(t *testing.T) {
	if os.Getenv(gcHelperEnv) == "1" {
		gcWhileSpinning(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGCWhileGuestSpins$", "-test.v")
	cmd.Env = append(os.Environ(), gcHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child hung: a GC during a spinning guest froze the process\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "gc-while-spinning ok") {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
}

func gcWhileSpinning(t *testing.T) {
	res := mustInstrument(t, readFile(t, "testdata/spin.wasm"), Options{})
	for _, e := range engines {
		if raceEnabled && e.name == "interpreter" {
			continue // see race_test.go
		}
		r := newRuntime(t, e.cfg())
		// One spinning instance per processor, so no processor is left free
		// for the collector or the test goroutine unless the guests yield.
		n := runtime.GOMAXPROCS(0)
		done := make(chan error, n)
		mods := make([]api.Module, n)
		for i := range mods {
			mods[i] = instantiate(t, r, res.Module, fmt.Sprint("spin", i))
			go func(m api.Module) {
				_, err := m.ExportedFunction("spin").Call(context.Background())
				done <- err
			}(mods[i])
		}
		time.Sleep(20 * time.Millisecond)
		for i := 0; i < 3; i++ {
			runtime.GC()
		}
		for _, m := range mods {
			mutable(t, m, res.StopExport).Set(1)
		}
		for i := 0; i < n; i++ {
			if err := <-done; err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("%s: spinner ended with %v", e.name, err)
			}
		}
		t.Logf("%s: %d spinners survived 3 GCs and stopped on the flag", e.name, n)
	}
	t.Log("gc-while-spinning ok")
}
