package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/netfault"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// TestAdvertiseThroughProxy: a node that announces a relay's address is
// verified (mutual TLS through the relay) and reached there, and only there.
func TestAdvertiseThroughProxy(t *testing.T) {
	ctx := context.Background()
	px, err := netfault.New(netfault.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	a := startTest(t, "a", t.TempDir())
	b, err := New(ctx, Config{DataDir: t.TempDir(), Name: "b", ListenAddr: "127.0.0.1:0", AdvertiseAddr: px.Addr(),
		GossipAddr: "127.0.0.1:0", Join: []string{a.GossipAddr()}, Dev: true, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	if err := px.SetTarget(b.ep.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if b.QUICAddr() != px.Addr() {
		t.Fatalf("b announces %s, want the proxy's %s", b.QUICAddr(), px.Addr())
	}
	waitPeers(t, a, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	var d DaemonInfo
	deadline := time.Now().Add(15 * time.Second)
	for { // b is a candidate for work only once a verified it through the proxy
		d, err = a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || d.Node != "b" {
		t.Fatalf("spawn on b: %+v, %v", d, err)
	}
	if got := send(t, a, "c", "x"); got != "1" {
		t.Fatalf("via a: %s", got)
	}
	if s := px.Stats(); s.In.Packets == 0 || s.Out.Packets == 0 {
		t.Fatalf("nothing crossed the proxy: %+v", s)
	}
	// c has never looked "c" up: it will ask every peer.
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	waitPeers(t, c, 2)
	// Cut the proxy: a can no longer reach b, so b's traffic did go there.
	if err := px.Set(netfault.Partitioned()); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := a.Send(sctx, "c", []byte("x")); err == nil {
		t.Fatal("a reached b's daemon through a partitioned proxy")
	}
	// A lookup that b does not answer is not a "not found": the daemon
	// may be there.
	_, err = c.Send(sctx, "c", []byte("x"))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("send by name while its node is cut off: %v, want ErrUnavailable", err)
	}
}

func TestAdvertiseRefused(t *testing.T) {
	for _, addr := range []string{"nohost", ":7402", "127.0.0.1:0", "127.0.0.1:x"} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", AdvertiseAddr: addr,
			GossipAddr: "127.0.0.1:0", Dev: true})
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("advertise %q: %v, want ErrBadConfig", addr, err)
		}
	}
}
