package e2e

import (
	"strconv"
	"sync"
	"testing"
)

// wasiLoopPayloads pick the WASI call wasi_loop spins on: 64 MiB stdout
// writes, poll_oneoff sleeping 10 s, sched_yield, and all the small ones.
var wasiLoopPayloads = []string{"b", "p", "y", "go"}

// TestHostileWASIRun: a loop of WASI calls under `wasmesh run
// --event-timeout 200ms` fails its event on the CPU budget (or, for the
// loop that also reads clocks, the readings cap) and exits 1; the loop of
// 64 MiB stdout writes ran for minutes before WASI calls checked the flag.
func TestHostileWASIRun(t *testing.T) {
	for _, p := range wasiLoopPayloads {
		r := cli(t, p+"\n", "run", bulkFixture("wasi_loop"), "--event-timeout", "200ms")
		if r.code != 1 || !stoppedBySandbox(r.stderr) {
			t.Fatalf("%s: %s", p, r)
		}
	}
}

// TestHostileWASINode: on a node, a daemon looping on WASI calls fails its
// events on the budget while an honest counter on the same node answers
// every send.
func TestHostileWASINode(t *testing.T) {
	a := startNode(t, "wasi", t.TempDir(), "--event-timeout", "200ms")
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "honest", "--node", a.url())
	ok(t, "deploy", bulkFixture("wasi_loop"), "--kind", "wasi_loop", "--node", a.url())
	ok(t, "spawn", "wasi_loop", "--name", "bad-wasi", "--node", a.url())
	var wg sync.WaitGroup
	results := make([]result, len(wasiLoopPayloads))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, p := range wasiLoopPayloads {
			results[i] = cli(t, "", "send", "bad-wasi", p, "--node", a.url())
		}
	}()
	const sends = 20
	for i := 1; i <= sends; i++ {
		if got := ok(t, "send", "honest", "x", "--node", a.url()); got != strconv.Itoa(i)+"\n" {
			t.Fatalf("honest send %d answered %q", i, got)
		}
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 1 || !stoppedBySandbox(r.stderr) {
			t.Fatalf("hostile send %q: %s", wasiLoopPayloads[i], r)
		}
	}
}
