package node

import (
	"context"
	"errors"
	"github.com/wasmesh/wasmesh/abi"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// TestMigrateKeepsNameAndRecord: after a migration the daemon answers by
// name on its new node, the new node has its record (so a restart brings it
// back) and the old one has forgotten it; a name clash on the target leaves
// the daemon addressable by id; bad requests are refused.
func TestMigrateKeepsNameAndRecord(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	var phases []string
	res, err := b.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, func(p MigrateProgress) { phases = append(phases, p.Phase) })
	if err != nil {
		t.Fatalf("migrate (asked on the target, orchestrated by the source): %v", err)
	}
	if res.From != "a" || res.To != "b" || res.Daemon != c.ID {
		t.Fatalf("result %+v", res)
	}
	if got := send(t, a, "c", "x"); got != "2" {
		t.Fatalf("by name through the old node: %s", got)
	}
	if _, err := b.store.Get(originOf(t, res.Daemon)); err != nil {
		t.Fatalf("target has no record: %v", err)
	}
	if _, err := a.store.Get(originOf(t, res.Daemon)); err == nil {
		t.Fatal("source kept the record of a daemon that moved away")
	}

	// A daemon named "d" on a, and another "d" already on b.
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "d"}); err != nil {
		t.Fatal(err)
	}
	d := a.LocalDaemons()[0]
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: d.ID, To: "b"}, nil); err != nil {
		t.Fatalf("migrate with a name clash: %v", err)
	}
	if got := send(t, b, d.ID, "x"); got != "1" {
		t.Fatalf("moved daemon by id: %s", got)
	}

	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: ""}, nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("no target: %v", err)
	}
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("to where it already is: %v", err)
	}
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "ghost", To: "b"}, nil); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("unknown daemon: %v", err)
	}
}

func originOf(t *testing.T, id string) uint64 {
	t.Helper()
	o, err := abi.ParseOrigin(id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
