package e2e

import (
	"encoding/json"
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
