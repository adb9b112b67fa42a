package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// errorsFail runs the CLI, checks the exit status and that stderr is one
// "wasmesh: ..." line, and returns that line. It reports and goes on, so
// one run shows every message that is wrong.
func errorsFail(t *testing.T, code int, args ...string) string {
	t.Helper()
	r := cli(t, "", args...)
	msg := strings.TrimRight(r.stderr, "\n")
	if r.code != code || strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "wasmesh: ") {
		t.Errorf("wasmesh %s: want exit %d and one 'wasmesh: ...' line: %s", strings.Join(args, " "), code, r)
	}
	return msg
}

// errorsSaysOnce fails unless msg has each phrase exactly once.
func errorsSaysOnce(t *testing.T, msg string, phrases ...string) {
	t.Helper()
	for _, p := range phrases {
		if n := strings.Count(strings.ToLower(msg), strings.ToLower(p)); n != 1 {
			t.Errorf("%q says %q %d times, want once", msg, p, n)
		}
	}
}

// TestErrorsSayTheirReasonOnce: the CLI's one-line errors name the reason
// once, in words that fit it, with the exit status of its class, also when
// the node that failed is not the one asked.
func TestErrorsSayTheirReasonOnce(t *testing.T) {
	a, b := twoNodes(t)

	msg := errorsFail(t, 2, "deploy", repoPath("README.md"), "--node", a.url())
	errorsSaysOnce(t, msg, "module refused")

	msg = errorsFail(t, 1, "spawn", "nosuchkind", "--node", a.url())
	errorsSaysOnce(t, msg, "unknown", "nosuchkind")

	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	msg = errorsFail(t, 1, "spawn", "counter", "--require", "ssd", "--node", a.url())
	errorsSaysOnce(t, msg, "no node matches")
	if strings.Contains(msg, "unknown node") || !strings.Contains(msg, `"ssd"`) {
		t.Errorf("no match reported as an unknown node: %q", msg)
	}

	// c1 lives on beta; alpha hands the migration to beta, which refuses.
	ok(t, "spawn", "counter", "--name", "c1", "--on", "beta", "--node", a.url())
	msg = errorsFail(t, 1, "migrate", "c1", "--require", "ssd", "--node", a.url())
	errorsSaysOnce(t, msg, "no node matches", "on node beta")
	msg = errorsFail(t, 1, "migrate", "c1", "--to", "nosuch", "--node", a.url())
	errorsSaysOnce(t, msg, "unknown node", `"nosuch"`, "on node beta")
	msg = errorsFail(t, 1, "spawn", "counter", "--name", "c1", "--on", "beta", "--node", a.url())
	errorsSaysOnce(t, msg, "already used", `"c1"`)
	msg = errorsFail(t, 1, "send", "ghost", "x", "--node", b.url())
	errorsSaysOnce(t, msg, "not found", `"ghost"`)
}

// TestPsListsDaemonsOfADeadNode: after kill -9 of the node hosting c1, ps
// through another node still lists c1, as unreachable, names the node on
// stderr and exits 1 (a partial listing); --json has the status too. A
// dead node whose daemons are not known still gets a row.
func TestPsListsDaemonsOfADeadNode(t *testing.T) {
	n1 := startNode(t, "n1", t.TempDir())
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	n3 := startNode(t, "n3", t.TempDir(), "--join", n1.info.Gossip)
	errorsWaitStates(t, n1, map[string]string{"n1": "alive", "n2": "alive", "n3": "alive"})

	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--name", "c1", "--on", "n2", "--node", n1.url()))
	if got := ok(t, "send", "c1", "a", "b", "--node", n1.url()); got != "1\n2\n" {
		t.Fatalf("send = %q", got)
	}
	if table := ok(t, "ps", "--node", n1.url()); !strings.Contains(table, id) {
		t.Fatalf("ps before the kill:\n%s", table)
	}

	n2.kill()
	n3.kill()
	errorsWaitStates(t, n1, map[string]string{"n1": "alive", "n2": "dead", "n3": "dead"})

	r := cli(t, "", "ps", "--node", n1.url())
	var c1Row, n3Row bool
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 5 && f[0] == id:
			c1Row = f[1] == "c1" && f[4] == "n2" && f[5] == "unreachable"
		case len(f) > 5 && f[4] == "n3":
			n3Row = f[0] == "-" && f[5] == "unreachable"
		}
	}
	if !c1Row || !n3Row {
		t.Fatalf("ps does not list c1 on n2 and a row for n3 as unreachable: %s", r)
	}
	if !strings.Contains(r.stderr, "warning: node n2") || !strings.Contains(r.stderr, "warning: node n3") {
		t.Fatalf("ps does not warn about n2 and n3: %s", r)
	}
	if r.code != 1 {
		t.Fatalf("ps with dead nodes: want exit 1 (partial listing): %s", r)
	}

	r = cli(t, "", "ps", "--json", "--node", n1.url())
	// Decoded here, not into node.DaemonInfo: the test is about the JSON.
	var rows []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Node   string `json:"node"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || r.code != 1 {
		t.Fatalf("ps --json: %v: %s", err, r)
	}
	status := map[string]string{}
	for _, d := range rows {
		status[d.Node+"/"+d.Name] = d.Status
	}
	if status["n2/c1"] != "unreachable" || status["n3/"] != "unreachable" || len(rows) != 2 {
		t.Fatalf("ps --json rows %+v", rows)
	}
	if !strings.Contains(r.stderr, "n2") {
		t.Fatalf("ps --json does not warn on stderr: %s", r)
	}
}

// errorsWaitStates waits until p sees each named member in its state.
func errorsWaitStates(t *testing.T, p *proc, want map[string]string) {
	t.Helper()
	eventually(t, 30*time.Second, "member states", func() (bool, string) {
		r := cli(t, "", "nodes", "--json", "--node", p.url())
		var ns []node.NodeInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
			return false, r.String()
		}
		seen := 0
		for _, n := range ns {
			if s, ok := want[n.Name]; ok && s == n.State && (s != "alive" || n.Address != "") {
				seen++
			}
		}
		return seen == len(want), r.stdout
	})
}

// TestPsListsDaemonsOfAStoppedNode: after SIGTERM of the node hosting c1
// (it checkpoints and leaves), ps lists c1 as offline with a warning and
// exits 0: the listing is complete, c1 waits on that node's disk.
func TestPsListsDaemonsOfAStoppedNode(t *testing.T) {
	n1 := startNode(t, "n1", t.TempDir())
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	errorsWaitStates(t, n1, map[string]string{"n1": "alive", "n2": "alive"})
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--name", "c1", "--on", "n2", "--node", n1.url()))
	ok(t, "ps", "--node", n1.url())

	n2.stop()
	errorsWaitStates(t, n1, map[string]string{"n1": "alive", "n2": "left"})
	r := cli(t, "", "ps", "--node", n1.url())
	if r.code != 0 || !strings.Contains(r.stderr, "warning: node n2 left the cluster") {
		t.Fatalf("ps after n2 left: %s", r)
	}
	found := false
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		found = found || (len(f) > 5 && f[0] == id && f[4] == "n2" && f[5] == "offline")
	}
	if !found {
		t.Fatalf("ps does not list c1 on n2 as offline: %s", r)
	}
}

// TestErrorsExactLines: the messages a new user met in issue 15, word for
// word, each on one line with its class's exit status.
func TestErrorsExactLines(t *testing.T) {
	n := startNode(t, "solo", t.TempDir())
	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{2, "wasmesh: node: module refused: wasm: malformed: missing wasm magic number at offset 0 (0x0)", []string{"deploy", repoPath("README.md")}},
		{1, `wasmesh: node: unknown kind: kind "nosuchkind" is not deployed on any of the 1 alive node(s) (deploy it first: wasmesh deploy MODULE.wasm --kind NAME)`, []string{"spawn", "nosuchkind"}},
		{0, "", []string{"deploy", counterWasm(), "--kind", "counter"}},
		{1, `wasmesh: node: no node matches the filter "ssd": "ssd" unmet on 1 (of 1 candidate(s))`, []string{"spawn", "counter", "--require", "ssd"}},
		{2, `wasmesh: unknown command "depoy"; did you mean "deploy"?`, []string{"depoy", "x.wasm"}},
	} {
		r := cli(t, "", append(tc.args, "--node", n.url())...)
		if tc.code == 0 {
			if r.code != 0 {
				t.Fatalf("%v: %s", tc.args, r)
			}
			continue
		}
		if r.code != tc.code || r.stderr != tc.want+"\n" {
			t.Errorf("wasmesh %s: want exit %d and\n\t%s\ngot %s", strings.Join(tc.args, " "), tc.code, tc.want, r)
		}
	}
	r := cli(t, "", "node", "--dev")
	if want := "wasmesh: node needs --data DIR (see wasmesh node --help)\n"; r.code != 2 || r.stderr != want {
		t.Errorf("node without --data: want exit 2 and %q, got %s", want, r)
	}
}

// TestErrorsDeadSeedIsOneLine: joining a seed nobody listens on ends, after
// the retries, with one line saying which flag and why (memberlist's
// multi-line "1 error occurred" block folded).
func TestErrorsDeadSeedIsOneLine(t *testing.T) {
	r := cli(t, "", "node", "--dev", "--data", t.TempDir(), "--log-level", "error",
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--join", "127.0.0.1:9")
	want := "wasmesh: node: peer unavailable: --join 127.0.0.1:9: no member answered after 10 attempts: dial tcp 127.0.0.1:9: connect: connection refused\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("want exit 1 and %q, got %s", want, r)
	}
}
