package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// A source that has not yet heard a target is draining (its gossip is
// behind) still cannot land a daemon there: the target's migrator refuses
// the migration itself, and the daemon stays where it was, with its state.
func TestDrainingTargetRefusesInboundMigration(t *testing.T) {
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
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	// Draining on b without telling anyone: only b's migrator can refuse.
	b.draining.Store(true)
	if m, ok := a.mem.MemberByNodeID(b.ID().String()); !ok || m.Meta.Draining {
		t.Fatalf("a already sees b draining (ok %v): the test would not reach b's migrator", ok)
	}
	_, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil)
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("migration into a draining node: %v", err)
	}
	if got := send(t, a, "c", "get"); got != "1" {
		t.Fatalf("count after the refused migration: %s, want 1 (on a)", got)
	}
	b.draining.Store(false)
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
		t.Fatalf("after undrain: %v", err)
	}
	if got := send(t, a, "c", "get"); got != "1" {
		t.Fatalf("count after moving to b: %s", got)
	}
}
