package node

import (
	"context"
	"slices"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// The target of a migration keeps what it needs to bring the daemon back
// by itself: the module on disk, the kind name in its store, the record
// under the daemon's name; counters and kind name show as on the source.
func TestArrivedDaemonIsKeptWithItsModule(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	bdir := t.TempDir()
	b := startTest(t, "b", bdir, a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	k, err := a.Deploy(ctx, examples.CounterWAT(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		send(t, a, "c", "x")
	}
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.layout.loadModule(k.Digest); err != nil {
		t.Fatalf("target did not store the module: %v", err)
	}
	al, err := b.store.Aliases()
	if err != nil || al["counter"] != k.Digest {
		t.Fatalf("target's kind names %v (%v)", al, err)
	}
	ls := b.LocalDaemons()
	if len(ls) != 1 || ls[0].Name != "c" || ls[0].Kind != "counter" || ls[0].EventsProcessed != 4 {
		t.Fatalf("on the target: %+v", ls)
	}
	rec, err := b.store.Get(originOf(t, ls[0].ID))
	if err != nil || rec.Name != "c" || !slices.Contains(rec.Aliases, "counter") {
		t.Fatalf("target's record %+v (%v)", rec, err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b = startTest(t, "b", bdir, a.GossipAddr())
	if got := send(t, b, "c", "get"); got != "4" {
		t.Fatalf("after a restart of the target: %s, want 4", got)
	}
	if ls := b.LocalDaemons(); len(ls) != 1 || ls[0].Kind != "counter" || ls[0].EventsProcessed != 5 {
		t.Fatalf("after a restart of the target: %+v", ls)
	}
}
