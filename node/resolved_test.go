package node

import (
	"context"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// A name resolved on a peer is remembered: the next sends by that name go
// straight to its route, and only a stop or a move away makes the node ask
// every peer again.
func TestResolvedNamesSkipTheFanOut(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	for _, n := range []*Node{a, b, c} {
		waitPeers(t, n, 2)
	}
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "ctr", On: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := send(t, c, "ctr", "x"); got != "1" {
		t.Fatalf("first send: %s", got)
	}
	o, ok := c.resolved.get("ctr")
	if !ok {
		t.Fatal("the name was not remembered after its lookup")
	}
	loc, ok := c.locateResolved(ctx, "ctr")
	if !ok || loc.node.id != b.id || loc.info.ID != abi.FormatOrigin(o) {
		t.Fatalf("locateResolved: %+v %v", loc, ok)
	}
	if got := send(t, c, "ctr", "x"); got != "2" {
		t.Fatalf("second send: %s", got)
	}
}
