package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// budgetFixture is a hostile module of the host's test fixtures.
func budgetFixture(name string) string {
	return repoPath("plugins/examples/testdata/" + name + ".wasm")
}

// A start function or wasmesh_init that never returns makes `wasmesh run`
// fail (exit 1: the work failed) naming the CPU budget, instead of hanging.
func TestHostileBudgetRun(t *testing.T) {
	for _, name := range []string{"start_loop", "init_loop"} {
		r := cli(t, "go\n", "run", budgetFixture(name), "--event-timeout", "200ms")
		msg := strings.TrimRight(r.stderr, "\n")
		if r.code != 1 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "CPU budget") {
			t.Fatalf("run %s: want exit 1 and one line naming the CPU budget: %s", name, r)
		}
	}
}

// On a node with an honest counter, spawning a module whose start function
// (or wasmesh_init) loops forever fails with a clear error; the counter
// keeps answering, ps and further spawns work, SIGTERM stops the node and
// a restart on the same data dir comes up with the counter intact.
func TestHostileBudgetNode(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, "hostile", data, "--event-timeout", "200ms")
	u := n.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	ok(t, "spawn", "counter", "--name", "honest", "--node", u)
	ok(t, "deploy", budgetFixture("start_loop"), "--kind", "start-loop", "--node", u)
	ok(t, "deploy", budgetFixture("init_loop"), "--kind", "init-loop", "--node", u)

	const events = 20
	for i := 1; i <= events; i++ {
		if i == 5 {
			failsWith(t, 1, "CPU budget", "spawn", "start-loop", "--name", "bomb", "--node", u)
		}
		if i == 10 {
			failsWith(t, 1, "CPU budget", "spawn", "init-loop", "--name", "bomb", "--node", u)
		}
		if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", u)); got != strconv.Itoa(i) {
			t.Fatalf("event %d: counter answered %q", i, got)
		}
	}
	ps := ok(t, "ps", "--node", u)
	if !strings.Contains(ps, "honest") || strings.Contains(ps, "bomb") {
		t.Fatalf("ps after the failed spawns:\n%s", ps)
	}
	// The name of a failed spawn is free again.
	ok(t, "spawn", "counter", "--name", "bomb", "--node", u)
	n.stop()
	if n.err != nil {
		t.Fatalf("node exit after SIGTERM: %v\n%s", n.err, n.log.String())
	}

	n = startNode(t, "hostile", data, "--event-timeout", "200ms")
	u = n.url()
	if got := strings.TrimSpace(ok(t, "send", "honest", "get", "--node", u)); got != strconv.Itoa(events) {
		t.Fatalf("after restart the counter reads %q, want %d", got, events)
	}
	if got := strings.TrimSpace(ok(t, "send", "bomb", "x", "--node", u)); got != "1" {
		t.Fatalf("after restart the second counter answered %q, want 1", got)
	}
	suiteEnd(t, n)
}
