package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/node"
)

// TestPlacementByCapabilities: spawn --require lets the scheduler choose a
// node by its announced tags (SPEC R-P1).
func TestPlacementByCapabilities(t *testing.T) {
	a, _ := twoNodes(t) // beta announces zone=test and gpu
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	out := ok(t, "spawn", "counter", "--require", "gpu,zone=test", "--json", "--node", a.url())
	var info node.DaemonInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Node != "beta" {
		t.Fatalf("placed %+v (%v), want beta", info, err)
	}
	failsWith(t, 1, "no", "spawn", "counter", "--require", "zone=mars", "--node", a.url())
	failsWith(t, 2, "require", "spawn", "counter", "--require", "memory_gb=>4", "--node", a.url())
	failsWith(t, 2, "exclusive", "spawn", "counter", "--require", "gpu", "--on", "alpha", "--node", a.url())
	// Nothing was placed by the refused requests.
	var ps []node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", a.url())), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("ps after refused placements: %+v %v", ps, err)
	}
}

// TestNodeLimits: a node's --max-memory and --event-timeout box in every
// daemon it runs.
func TestNodeLimits(t *testing.T) {
	a := startNode(t, "boxed", t.TempDir(), "--max-memory", "128KiB", "--event-timeout", "100ms")
	ok(t, "deploy", repoPath("plugins/examples/testdata/grow.wasm"), "--kind", "grow", "--node", a.url())
	ok(t, "spawn", "grow", "--name", "g", "--node", a.url())
	if got := ok(t, "send", "g", "x", "--node", a.url()); got != "2\n" {
		t.Fatalf("memory.size under a 128KiB cap = %q, want 2 pages", got)
	}
	ok(t, "deploy", repoPath("plugins/examples/testdata/loop.wasm"), "--kind", "loop", "--node", a.url())
	ok(t, "spawn", "loop", "--name", "l", "--node", a.url())
	if r := cli(t, "", "send", "l", "go", "--node", a.url()); r.code != 1 || !strings.Contains(r.stderr, "CPU budget: budget 100ms") {
		t.Fatalf("runaway loop under a 100ms budget: %s", r)
	}
	failsWith(t, 2, "max-memory", "node", "--dev", "--data", t.TempDir(), "--max-memory", "1KiB")
}

// TestMigrateByRequirement: migrate --require lets the scheduler pick the
// target among nodes that match and are not the source.
func TestMigrateByRequirement(t *testing.T) {
	a, b := twoNodes(t) // beta announces zone=test and gpu
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "m", "--node", a.url())
	ok(t, "send", "m", "x", "--node", a.url())
	out := ok(t, "migrate", "m", "--require", "zone=test", "--json", "--node", a.url())
	var res node.MigrateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.To != "beta" {
		t.Fatalf("migrate --require: %+v %v", res, err)
	}
	if got := ok(t, "send", "m", "get", "--node", b.url()); got != "1\n" {
		t.Fatalf("count after the move = %q", got)
	}
	// Back with "any node": the only other one is alpha.
	out = ok(t, "migrate", "m", "--require", "", "--json", "--node", b.url())
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.To != "alpha" {
		t.Fatalf("migrate --require '': %+v %v", res, err)
	}
	failsWith(t, 1, "no", "migrate", "m", "--require", "zone=mars", "--node", a.url())
	failsWith(t, 2, "exactly one", "migrate", "m", "--node", a.url())
	failsWith(t, 2, "exactly one", "migrate", "m", "--to", "beta", "--require", "gpu", "--node", a.url())
}
