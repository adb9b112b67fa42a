package e2e

import (
	"strconv"
	"strings"
	"sync"
	"testing"
)

func bulkFixture(name string) string {
	return repoPath("plugins/examples/testdata/" + name + ".wasm")
}

// TestHostileBulkRun: a loop of 64 MiB memory.fill under `wasmesh run
// --event-timeout 200ms` fails its event on the CPU budget and exits 1
// (it ran for minutes before bulk instructions were charged).
func TestHostileBulkRun(t *testing.T) {
	for _, name := range []string{"fill_loop", "copy_loop", "hostcall_loop"} {
		r := cli(t, "go\n", "run", bulkFixture(name), "--event-timeout", "200ms")
		if r.code != 1 || !stoppedBySandbox(r.stderr) {
			t.Fatalf("%s: %s", name, r)
		}
	}
}

// TestHostileBulkNode: on a node, the hostile daemon's events fail on the
// budget while an honest counter on the same node answers every send.
func TestHostileBulkNode(t *testing.T) {
	a := startNode(t, "bulk", t.TempDir(), "--event-timeout", "200ms")
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "honest", "--node", a.url())
	for _, name := range []string{"fill_loop", "copy_loop", "hostcall_loop"} {
		ok(t, "deploy", bulkFixture(name), "--kind", name, "--node", a.url())
		ok(t, "spawn", name, "--name", "bad-"+name, "--node", a.url())
	}
	const sends = 20
	var wg sync.WaitGroup
	results := make([]result, 0, 6)
	var mu sync.Mutex
	for _, name := range []string{"fill_loop", "copy_loop", "hostcall_loop"} {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			for i := 0; i < 2; i++ {
				r := cli(t, "", "send", "bad-"+name, "go", "--node", a.url())
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}(name)
	}
	answered := 0
	for i := 1; i <= sends; i++ {
		if got := ok(t, "send", "honest", "x", "--node", a.url()); got != strconv.Itoa(i)+"\n" {
			t.Fatalf("honest send %d answered %q", i, got)
		}
		answered++
	}
	wg.Wait()
	if answered != sends {
		t.Fatalf("honest daemon answered %d of %d sends", answered, sends)
	}
	for _, r := range results {
		if r.code != 1 || !stoppedBySandbox(r.stderr) {
			t.Fatalf("hostile send: %s", r)
		}
	}
	if len(results) != 6 {
		t.Fatalf("%d hostile sends returned, want 6", len(results))
	}
	suiteEnd(t, a)
}

// stoppedBySandbox: the hostile event was cut off by the CPU budget, or, for
// a loop of clock reads, by the per-event readings cap, whichever it hit
// first (both end the event and roll it back).
func stoppedBySandbox(stderr string) bool {
	return strings.Contains(stderr, "CPU budget") || strings.Contains(stderr, "readings limit")
}
