package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// TestDrainThroughAnotherNode: b asked to drain a has a drain itself and
// relays every progress event; a partial failure keeps its result and its
// class; undrain through b lets a take daemons again.
func TestDrainThroughAnotherNode(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	for _, n := range []*Node{a, b} {
		if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"x", "y", "z"} {
		if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	var events []DrainProgress
	res, err := b.Drain(ctx, DrainRequest{Node: "a"}, func(p DrainProgress) { events = append(events, p) })
	if err != nil {
		t.Fatalf("drain a through b: %v", err)
	}
	moved := 0
	for _, e := range events {
		if e.Event == "moved" {
			moved++
		}
	}
	if res.Node != "a" || res.Moved != 3 || moved != 3 || events[0].Event != "start" || len(a.LocalDaemons()) != 0 || len(b.LocalDaemons()) != 3 {
		t.Fatalf("result %+v, events %+v", res, events)
	}
	if !a.Draining() || b.Draining() {
		t.Fatalf("draining: a %v, b %v", a.Draining(), b.Draining())
	}
	// b drained through a, which is draining: every move fails, and the
	// partial result comes back with the error's class and node.
	res, err = a.Drain(ctx, DrainRequest{Node: "b"}, nil)
	if !errors.Is(err, ErrMigration) || !strings.HasSuffix(err.Error(), "(on node b)") || res.Failed != 3 || len(res.Daemons) != 3 {
		t.Fatalf("drain b with a draining: %v (%+v)", err, res)
	}
	if err := a.Undrain(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Undrain(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if a.Draining() {
		t.Fatal("undrain through b left a draining")
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", On: "a"}); err != nil {
		t.Fatalf("spawn on a after undrain: %v", err)
	}
}
