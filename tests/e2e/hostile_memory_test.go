package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// memFixture is a hostile-memory fixture of plugins/examples/testdata.
func memFixture(name string) string {
	return repoPath("plugins/examples/testdata/" + name + ".wasm")
}

// memRSS is a process's peak resident set (VmHWM) in bytes, from
// /proc/PID/status.
func memRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of node %d: %v", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM for node %d", pid)
	return 0
}

// TestHostileMemoryInspectLocalsBomb (issue 10, item 4): the 123-byte
// module declaring 100M locals is refused by inspect, naming the limit,
// before anything compiles it (it took 2.5 GB and 6.6 s to compile).
func TestHostileMemoryInspectLocalsBomb(t *testing.T) {
	r := cli(t, "", "inspect", memFixture("locals_bomb"))
	if r.code != 1 || !strings.Contains(r.stdout, "100000004 locals") || !strings.Contains(r.stdout, "the limit is 50000") {
		t.Fatalf("inspect locals_bomb: want exit 1 naming the locals limit: %s", r)
	}
	a := startNode(t, "solo", t.TempDir())
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "honest", "--node", a.url())
	failsWith(t, 2, "locals", "deploy", memFixture("locals_bomb"), "--kind", "lb", "--node", a.url())
	if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", a.url())); got != "1" {
		t.Fatalf("honest daemon after the refused deploy answered %q", got)
	}
	suiteEnd(t, a)
}

// TestHostileMemoryNode (issue 10, item 4): on one node with an honest
// counter, a random bomb's events fail (readings cap) and a table bomb's
// table.grow is refused (-1); the counter answers every send, and the
// node's peak RSS stays far below what the bombs asked for (20 x 64 MiB of
// random bytes, 64M table entries per event).
func TestHostileMemoryNode(t *testing.T) {
	a := startNode(t, "solo", t.TempDir(), "--max-memory", "128MiB")
	u := a.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	ok(t, "deploy", memFixture("random_bomb"), "--kind", "rbomb", "--node", u)
	ok(t, "deploy", memFixture("table_bomb"), "--kind", "tbomb", "--node", u)
	ok(t, "spawn", "counter", "--name", "honest", "--node", u)
	ok(t, "spawn", "rbomb", "--name", "rb", "--node", u)
	ok(t, "spawn", "tbomb", "--name", "tb", "--node", u)
	const rounds = 5
	for i := 1; i <= rounds; i++ {
		if r := cli(t, "", "send", "rb", "bomb", "--node", u); r.code != 1 || !strings.Contains(r.stderr, "readings limit exceeded") {
			t.Fatalf("random bomb round %d: want exit 1 with the readings limit: %s", i, r)
		}
		if got := strings.TrimSpace(ok(t, "send", "tb", "x", "--output-format", "hex", "--node", u)); got != "ffffffff" {
			t.Fatalf("table bomb round %d: table.grow answered %q, want ffffffff (-1)", i, got)
		}
		if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", u)); got != strconv.Itoa(i) {
			t.Fatalf("round %d: counter answered %q", i, got)
		}
	}
	// The bombs asked for 6.4 GB of random bytes and 2.5 GB of table;
	// the node as a whole stays under 1 GiB at its peak.
	rss := memRSS(t, a.cmd.Process.Pid)
	if rss > 1<<30 {
		t.Fatalf("node peak RSS %d MiB after the bombs", rss>>20)
	}
	t.Logf("node peak RSS after %d rounds of bombs: %d MiB", rounds, rss>>20)
	// Every bomb event was rolled back: this is the daemon's first count.
	if got := strings.TrimSpace(ok(t, "send", "rb", "x", "--output-format", "hex", "--node", u)); got != "0100000000000000" {
		t.Fatalf("the random bomb daemon's next event answered %q, want count 1", got)
	}
	suiteEnd(t, a)
}

// TestHostileMemoryRun (issue 10, item 4): the same bombs under
// `wasmesh run`: random bomb events fail with the readings limit and the
// events between them count on; table.grow answers -1 under a 1 MiB cap;
// locals_bomb is refused as input (exit 2) naming the limit.
func TestHostileMemoryRun(t *testing.T) {
	r := cli(t, "bomb\nx\nbomb\nx\n", "run", memFixture("random_bomb"), "--max-memory", "128MiB", "--output-format", "hex")
	if r.code != 1 || r.stdout != "0100000000000000\n0200000000000000\n" || strings.Count(r.stderr, "readings limit exceeded") != 2 {
		t.Fatalf("run random_bomb: %s", r)
	}
	r = cli(t, "x\nx\n", "run", memFixture("table_bomb"), "--max-memory", "1MiB", "--output-format", "hex")
	if r.code != 0 || r.stdout != "ffffffff\nffffffff\n" {
		t.Fatalf("run table_bomb: %s", r)
	}
	failsWith(t, 2, "the limit is 50000", "run", memFixture("locals_bomb"))
}
