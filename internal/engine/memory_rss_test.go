package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// resetPeak resets VmHWM (Linux: "5" to clear_refs).
func resetPeak(tb testing.TB) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Skipf("cannot reset the peak RSS: %v", err)
	}
}

func vmHWM(tb testing.TB) uint64 { return procStatus(tb, "VmHWM:") }

func vmRSS(tb testing.TB) uint64 { return procStatus(tb, "VmRSS:") }

// procStatus reads one size from /proc/self/status, in bytes.
func procStatus(tb testing.TB, key string) uint64 {
	tb.Helper()
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if fields := bytes.Fields(sc.Bytes()); len(fields) >= 2 && string(fields[0]) == key {
			kb, err := strconv.ParseUint(string(fields[1]), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/self/status", key)
	return 0
}

// BenchmarkGrowBombRSS measures the host memory one daemon costs when it
// grows its linear memory to the cap and touches every page, as a multiple
// of the cap (metric rss/cap): the figure documented in abi/README.md.
// Run: go test -run '^$' -bench GrowBombRSS -benchtime 1x ./internal/engine/
func BenchmarkGrowBombRSS(b *testing.B) {
	const capBytes = 64 << 20
	const daemons = 4
	rt := readyRuntime(b, map[string][]byte{"ballast": fixture(b, "ballast.wasm")})
	payload := binary.LittleEndian.AppendUint32(nil, capBytes-65536)
	var ratio, peak float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		debug.FreeOSMemory()
		before := vmRSS(b)
		var ds []*engine.Daemon
		for j := 0; j < daemons; j++ {
			d := spawn(b, rt, "ballast", engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: capBytes}})
			if _, err := d.Deliver(context.Background(), engine.Event{Sender: 1, Seq: 1, Payload: payload}); err != nil {
				b.Fatal(err)
			}
			// Enough small events for the journal to refresh its rollback
			// checkpoint, which then holds a copy of the full memory: the
			// steady state of a daemon at its cap.
			for s := 0; s < 16*1024+1; s++ {
				if _, err := d.Deliver(context.Background(), engine.Event{Sender: 1, Seq: uint64(2 + s), Payload: []byte("x")}); err != nil {
					b.Fatal(err)
				}
			}
			ds = append(ds, d)
		}
		runtime.GC()
		after := vmRSS(b)
		ratio = float64(after-before) / daemons / capBytes
		// A failing event (a fill past the cap traps) rolls back: a fresh
		// instance is rebuilt from the checkpoint while the old one exists.
		resetPeak(b)
		for _, d := range ds {
			_, err := d.Deliver(context.Background(), engine.Event{Sender: 2, Seq: 1, Payload: binary.LittleEndian.AppendUint32(nil, 2*capBytes)})
			if err == nil {
				b.Fatal("a fill past the cap succeeded")
			}
		}
		peak = float64(vmHWM(b)-before) / daemons / capBytes
		for _, d := range ds {
			if err := rt.Stop(context.Background(), d.Origin()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(ratio, "rss/cap")
	b.ReportMetric(peak, "peak-rss/cap")
}
