package node

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// chanCluster starts three nodes that see each other, with the counter
// example deployed on each.
func chanCluster(t *testing.T) []*Node {
	t.Helper()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	ns := []*Node{a, b, c}
	for _, n := range ns {
		waitPeers(t, n, 2)
		if _, err := n.Deploy(context.Background(), examples.CounterWAT(), "counter"); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func countOf(t *testing.T, n *Node, ref string) int {
	t.Helper()
	got, err := strconv.Atoi(send(t, n, ref, "get"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func waitCount(t *testing.T, n *Node, ref string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := countOf(t, n, ref)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s counted %d, want %d", ref, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChannelPublishReachesEverySubscriberOnceAcrossMigrations(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b, c := ns[0], ns[1], ns[2]
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: "orders/eu"}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []struct {
		n    *Node
		name string
	}{{b, "s1"}, {c, "s2"}} {
		if _, err := sp.n.Spawn(ctx, SpawnRequest{Kind: "counter", Name: sp.name}); err != nil {
			t.Fatal(err)
		}
		// Subscribed by name, through a node that does not host it.
		if _, err := a.Subscribe(ctx, sp.name, "orders/eu", nil); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := a.Subscriptions(ctx, "s1")
	if err != nil || len(subs) != 1 || subs[0].Channel != "orders/eu" || subs[0].Sub == "" {
		t.Fatalf("subscriptions of s1: %+v, %v", subs, err)
	}
	const total = 2000
	done := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 100 {
			var ps [][]byte
			for j := i; j < i+100; j++ {
				ps = append(ps, []byte(fmt.Sprint(j)))
			}
			res, err := a.Publish(ctx, PublishRequest{Channel: "orders/eu", Payloads: ps})
			if err == nil && res.Accepted != 100 {
				err = fmt.Errorf("accepted %d of 100", res.Accepted)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "s1", To: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := a.Migrate(ctx, MigrateRequest{Ref: "s2", To: "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Subscriptions) != 1 || res.Subscriptions[0].Error != "" {
		t.Fatalf("migration summary subscriptions: %+v", res.Subscriptions)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitCount(t, a, "s1", total)
	waitCount(t, a, "s2", total)
	chs, err := c.Channels(ctx)
	if err != nil || len(chs) != 1 {
		t.Fatalf("channels: %+v %v", chs, err)
	}
	if chs[0].Published != total || len(chs[0].Subscribers) != 2 {
		t.Fatalf("channel: %+v", chs[0])
	}
}
