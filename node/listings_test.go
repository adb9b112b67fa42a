package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// TestListingOfALeftNode: after b leaves cleanly, a still lists b's daemon,
// offline, names b as not answering, and does not list twice a daemon that
// moved away from b before it left.
func TestListingOfALeftNode(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	for deadline := time.Now().Add(10 * time.Second); !Knows(a, b) || !Knows(b, a); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a and b have no address for each other")
		}
	}
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "m", On: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if all, missing := a.Daemons(ctx); len(all) != 2 || all[0].Status != StatusRunning || len(missing) != 0 {
		t.Fatalf("before: %+v, missing %v", all, missing)
	}
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "m", To: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := false
		for _, mem := range a.mem.Members() {
			left = left || (mem.Name == "b" && mem.State == cluster.StateLeft)
		}
		if left {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a does not see b as left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	all, missing := a.Daemons(ctx)
	got := map[string]string{}
	for _, d := range all {
		got[d.ID+"@"+d.Node] = d.Status
	}
	if len(all) != 2 || got[c.ID+"@b"] != StatusOffline || got[m.ID+"@a"] != StatusRunning || len(missing) != 1 || missing[0] != "b" {
		t.Fatalf("after b left: %+v, missing %v", all, missing)
	}
	// A node that left with nothing on it is not missing anything.
	a.listings.put(b.id, nil, time.Now())
	if all, missing := a.Daemons(ctx); len(all) != 1 || len(missing) != 0 {
		t.Fatalf("after an empty b left: %+v, missing %v", all, missing)
	}
}

// TestPeerListingsAreBounded: a huge listing keeps maxListedDaemons rows
// and says more exist (the node's row with no id); members that are gone
// are forgotten.
func TestPeerListingsAreBounded(t *testing.T) {
	n := &Node{}
	l := &n.listings
	var id, other nodekey.NodeID
	id[0], other[0] = 1, 2
	rows := make([]DaemonInfo, maxListedDaemons+5)
	for i := range rows {
		rows[i] = DaemonInfo{ID: fmt.Sprintf("%016x", i), Node: "p", Horizon: map[string]uint64{"x": 1}}
	}
	l.put(id, rows, time.Now())
	l.put(other, rows[:1], time.Now())
	got := n.lastKnown(id, "p", StatusUnreachable, map[string]bool{rows[0].ID: true})
	if len(got) != maxListedDaemons {
		t.Fatalf("%d rows, want %d (one moved away, one for the node)", len(got), maxListedDaemons)
	}
	if last := got[len(got)-1]; last.ID != "" || last.Node != "p" || last.Status != StatusUnreachable {
		t.Fatalf("last row %+v, want the node's row", last)
	}
	if got[0].Horizon != nil || got[0].Status != StatusUnreachable {
		t.Fatalf("cached row %+v", got[0])
	}
	n.listings.keepOnly(map[nodekey.NodeID]bool{id: true})
	if _, ok := n.listings.get(other); ok {
		t.Fatal("a member that is gone is still remembered")
	}
	if got := n.lastKnown(other, "q", StatusOffline, nil); len(got) != 1 || got[0].ID != "" || got[0].Status != StatusOffline {
		t.Fatalf("nothing known: %+v", got)
	}
}
