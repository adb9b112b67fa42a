package host_test

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

	"github.com/wasmesh/wasmesh/host"
)

// vmRSS is this process's resident set in bytes, from /proc/self/status.
func vmRSS(tb testing.TB) uint64 {
	tb.Helper()
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if fields := bytes.Fields(sc.Bytes()); len(fields) >= 2 && string(fields[0]) == "VmRSS:" {
			kb, err := strconv.ParseUint(string(fields[1]), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkGrowBombRSS measures the host memory one daemon costs when it
// grows its linear memory to the cap and touches every page, as a multiple
// of the cap (metric rss/cap): the figure documented in abi/README.md.
// Run: go test -run '^$' -bench GrowBombRSS -benchtime 1x ./host/
func BenchmarkGrowBombRSS(b *testing.B) {
	const capBytes = 64 << 20
	const daemons = 4
	rt := readyRuntime(b, map[string][]byte{"ballast": fixture(b, "ballast.wasm")})
	payload := binary.LittleEndian.AppendUint32(nil, capBytes-65536)
	var ratio float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		debug.FreeOSMemory()
		before := vmRSS(b)
		var ds []*host.Daemon
		for j := 0; j < daemons; j++ {
			d := spawn(b, rt, "ballast", host.SpawnOptions{Limits: host.Limits{MaxMemoryBytes: capBytes}})
			if _, err := d.Deliver(context.Background(), host.Event{Sender: 1, Seq: 1, Payload: payload}); err != nil {
				b.Fatal(err)
			}
			// A second event, so the rollback checkpoint of the full memory
			// is taken and held as in steady state.
			if _, err := d.Deliver(context.Background(), host.Event{Sender: 1, Seq: 2, Payload: []byte("x")}); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, d)
		}
		runtime.GC()
		after := vmRSS(b)
		ratio = float64(after-before) / daemons / capBytes
		for _, d := range ds {
			if err := rt.Stop(context.Background(), d.Origin()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(ratio, "rss/cap")
}
