package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

var (
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)
	idRE     = regexp.MustCompile(`^[0-9a-f]{16}\n$`)
)

func counterWasm() string { return repoPath("plugins/examples/counter-wat/counter-wat.wasm") }

// twoNodes starts a and b, b joined to a, and waits until both see each
// other with a QUIC address.
func twoNodes(t *testing.T) (a, b *proc) {
	a = startNode(t, "alpha", t.TempDir())
	b = startNode(t, "beta", t.TempDir(), "--join", a.info.Gossip, "--tag", "zone=test", "--tag", "gpu")
	for _, p := range []*proc{a, b} {
		eventually(t, 15*time.Second, "membership", func() (bool, string) {
			r := cli(t, "", "nodes", "--json", "--node", p.url())
			var ns []node.NodeInfo
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
				return false, r.String()
			}
			alive := 0
			for _, n := range ns {
				if n.State == "alive" && n.Address != "" {
					alive++
				}
			}
			return alive == 2, r.stdout
		})
	}
	return a, b
}

func TestClusterOperatorFlow(t *testing.T) {
	a, b := twoNodes(t)

	dg := ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	if !digestRE.MatchString(dg) {
		t.Fatalf("deploy printed %q, want sha256:<hex>", dg)
	}
	// Spawned on beta through alpha: beta has never seen the module and
	// must fetch it from alpha by digest.
	id := ok(t, "spawn", "counter", "--name", "c1", "--on", "beta", "--node", a.url())
	if !idRE.MatchString(id) {
		t.Fatalf("spawn printed %q, want 16 hex digits", id)
	}
	id = strings.TrimSpace(id)

	// Through the node that does not host it, by name.
	if got := ok(t, "send", "c1", "a", "b", "--node", a.url()); got != "1\n2\n" {
		t.Fatalf("send via alpha = %q, want 1 2", got)
	}
	// Through the hosting node, by id, from stdin, hex output.
	r := cli(t, "x\nget\n", "send", id, "--stdin", "--output-format", "hex", "--node", b.url())
	if r.code != 0 || r.stdout != "33\n33\n" {
		t.Fatalf("send --stdin via beta: %s", r)
	}

	var ps []node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", a.url())), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ID != id || ps[0].Name != "c1" || ps[0].Node != "beta" || ps[0].Kind != "counter" ||
		ps[0].Digest != strings.TrimSpace(dg) || ps[0].EventsProcessed != 4 {
		t.Fatalf("ps --json = %+v", ps)
	}
	if table := ok(t, "ps", "--node", b.url()); !strings.Contains(table, id) || !strings.Contains(table, "beta") {
		t.Fatalf("ps table:\n%s", table)
	}

	var nodes []node.NodeInfo
	if err := json.Unmarshal([]byte(ok(t, "nodes", "--json", "--node", a.url())), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[1].Name != "beta" || strings.Join(nodes[1].Tags, ",") != "gpu,zone=test" {
		t.Fatalf("nodes --json = %+v", nodes)
	}
	eventually(t, 10*time.Second, "beta announces load 1", func() (bool, string) {
		out := ok(t, "nodes", "--json", "--node", a.url())
		var ns []node.NodeInfo
		_ = json.Unmarshal([]byte(out), &ns)
		return len(ns) == 2 && ns[1].Load == 1, out
	})

	var st node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "stats", "c1", "--json", "--node", a.url())), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != id || st.EventsProcessed != 4 || st.EventsEmitted != 4 || st.Node != "beta" {
		t.Fatalf("stats = %+v", st)
	}
	if out := ok(t, "stats", id, "--node", b.url()); !strings.Contains(out, "events processed") {
		t.Fatalf("stats table:\n%s", out)
	}
	if out := ok(t, "logs", "c1", "--json", "--node", a.url()); strings.TrimSpace(out) != "[]" {
		t.Fatalf("logs of a silent guest = %q", out)
	}

	// Snapshot through alpha, go on counting, restore on beta: back to 3.
	snap := filepath.Join(t.TempDir(), "c1.snap")
	ok(t, "snapshot", "c1", "-o", snap, "--node", a.url())
	if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot file: %v", err)
	}
	if got := ok(t, "send", "c1", "y", "--node", a.url()); got != "4\n" {
		t.Fatalf("send after snapshot = %q", got)
	}
	if got := ok(t, "restore", snap, "--kind", "counter", "--force", "--node", b.url()); strings.TrimSpace(got) != id {
		t.Fatalf("restore printed %q, want %s", got, id)
	}
	if got := ok(t, "send", "c1", "get", "--node", a.url()); got != "3\n" {
		t.Fatalf("get after restore = %q, want 3", got)
	}
	// The snapshot file alone cannot be restored where the key is not; the
	// error names the node that has it.
	failsWith(t, 1, "its key is on node beta", "restore", snap, "--on", "alpha", "--node", a.url())

	if out := ok(t, "stop", "c1", "--node", a.url()); !strings.Contains(out, id) {
		t.Fatalf("stop printed %q", out)
	}
	if out := ok(t, "ps", "--json", "--node", b.url()); strings.TrimSpace(out) != "[]" {
		t.Fatalf("ps after stop = %s", out)
	}
	failsWith(t, 1, "not found", "send", "c1", "z", "--node", a.url())
	// A stopped daemon comes back with restore on its node.
	ok(t, "restore", snap, "--node", b.url())
	if got := ok(t, "send", id, "get", "--node", a.url()); got != "3\n" {
		t.Fatalf("get after stop+restore = %q", got)
	}

	// Names are unique per node.
	failsWith(t, 1, "already used", "spawn", "counter", "--name", "c1", "--on", "beta", "--node", a.url())
	// Metrics are served and count this node's events.
	if m := ok(t, "send", "c1", "get", "--node", b.url()); m != "3\n" {
		t.Fatalf("get via beta = %q", m)
	}
}

func TestRestartRecovery(t *testing.T) {
	data := t.TempDir()
	a := startNode(t, "solo", data)
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--name", "c", "--node", a.url()))
	if got := ok(t, "send", "c", "a", "b", "c", "--node", a.url()); got != "1\n2\n3\n" {
		t.Fatalf("send = %q", got)
	}
	eventually(t, 10*time.Second, "checkpoint covers 3 events", func() (bool, string) {
		out := ok(t, "stats", "c", "--json", "--node", a.url())
		var st node.DaemonInfo
		_ = json.Unmarshal([]byte(out), &st)
		return st.CheckpointInputSeq == 3, out
	})
	a.kill()

	b := startNode(t, "solo", data)
	if !strings.Contains(b.log.String(), "daemon recovered") || !strings.Contains(b.log.String(), id) {
		t.Fatalf("restart log does not say it recovered %s:\n%s", id, b.log.String())
	}
	if got := ok(t, "send", "c", "get", "d", "--node", b.url()); got != "3\n4\n" {
		t.Fatalf("after kill -9 and restart: %q, want 3 then 4", got)
	}

	// A clean stop checkpoints what the interval has not yet.
	ok(t, "send", "c", "e", "--node", b.url())
	b.stop()
	c := startNode(t, "solo", data, "--checkpoint-interval", "-1s")
	if got := ok(t, "send", id, "get", "--node", c.url()); got != "5\n" {
		t.Fatalf("after SIGTERM and restart: %q, want 5", got)
	}
}

func TestDemo(t *testing.T) {
	r := cli(t, "", "demo", "--duration", "1s", "--rate", "100")
	if r.code != 0 || !strings.Contains(r.stdout, "no event lost or repeated") || !strings.Contains(r.stdout, "fetched the module") {
		t.Fatalf("demo: %s", r)
	}
	r = cli(t, "", "demo", "--duration", "10s", "--events", "25")
	if r.code != 0 || !strings.Contains(r.stdout, "sent 25 events") {
		t.Fatalf("demo --events 25: %s", r)
	}
}
