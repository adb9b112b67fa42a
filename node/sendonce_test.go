package node

import (
	"context"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

func TestSendOnceAppliesEachClientEventOnce(t *testing.T) {
	ctx := context.Background()
	dirB := t.TempDir()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", dirB, a.GossipAddr())
	waitPeers(t, a, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"}); err != nil {
		t.Fatal(err)
	}
	once := func(via *Node, client string, id uint64) Delivery {
		t.Helper()
		res, err := via.SendOnce(ctx, "c", client, id, []byte("x"))
		if err != nil {
			t.Fatalf("send %s#%d via %s: %v", client, id, via.Name(), err)
		}
		return res
	}
	if r := once(b, "loader", 1); r.Duplicate || string(r.Outputs[0]) != "1" {
		t.Fatalf("first event: %+v", r)
	}
	// A resend, locally and through another node, is answered, not applied.
	for _, via := range []*Node{b, a} {
		if r := once(via, "loader", 1); !r.Duplicate || len(r.Outputs) != 0 {
			t.Fatalf("resend via %s: %+v", via.Name(), r)
		}
	}
	if r := once(a, "loader", 2); r.Duplicate || string(r.Outputs[0]) != "2" {
		t.Fatalf("next event via a: %+v", r)
	}
	// Another client has its own numbering.
	if r := once(a, "other", 1); r.Duplicate || string(r.Outputs[0]) != "3" {
		t.Fatalf("other client: %+v", r)
	}
	// Anonymous sends are never deduplicated.
	if got := send(t, a, "c", "x"); got != "4" {
		t.Fatalf("anonymous: %s", got)
	}
	// The client ids live in the daemon's horizon: they survive a restart.
	b.Close(ctx)
	b2 := startTest(t, "b", dirB, a.GossipAddr())
	if r := once(b2, "loader", 2); !r.Duplicate {
		t.Fatalf("resend after a restart was applied again: %+v", r)
	}
	if r := once(b2, "loader", 3); r.Duplicate || string(r.Outputs[0]) != "5" {
		t.Fatalf("after restart: %+v", r)
	}
	for _, bad := range []struct {
		client string
		id     uint64
	}{{"", 1}, {"has space", 1}, {"loader", 0}} {
		if _, err := b2.SendOnce(ctx, "c", bad.client, bad.id, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("client %q id %d: %v", bad.client, bad.id, err)
		}
	}
}
