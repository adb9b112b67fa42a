package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

func startTest(t *testing.T, name, dir string, join ...string) *Node {
	t.Helper()
	n, err := New(context.Background(), Config{
		DataDir: dir, Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
		Dev: true, CheckpointInterval: -1, Logger: testLogger(name),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// testLogger shows the node's warnings when WASMESH_TEST_LOG is set.
func testLogger(name string) *slog.Logger {
	if os.Getenv("WASMESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

func waitPeers(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.peers()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d peers, want %d", n.Name(), len(n.peers()), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func send(t *testing.T, n *Node, ref, payload string) string {
	t.Helper()
	res, err := n.Send(context.Background(), ref, []byte(payload))
	if err != nil {
		t.Fatalf("send %s via %s: %v", payload, n.Name(), err)
	}
	if len(res.Outputs) != 1 {
		t.Fatalf("outputs %q", res.Outputs)
	}
	return string(res.Outputs[0])
}

func TestSpawnOnPeerAndDeliverAnywhere(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	d, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Node != "b" || len(b.LocalDaemons()) != 1 || len(a.LocalDaemons()) != 0 {
		t.Fatalf("spawned %+v; a has %d, b has %d", d, len(a.LocalDaemons()), len(b.LocalDaemons()))
	}
	// b fetched the module from a and kept the kind name.
	if _, err := b.rt.Kind("counter"); err != nil {
		t.Fatalf("b lacks the kind: %v", err)
	}
	if got := send(t, a, "c", "x"); got != "1" {
		t.Fatalf("via a by name: %s", got)
	}
	if got := send(t, a, d.ID, "x"); got != "2" {
		t.Fatalf("via a by id (route cached): %s", got)
	}
	if got := send(t, b, "c", "x"); got != "3" {
		t.Fatalf("via b: %s", got)
	}
	all, missing := a.Daemons(ctx)
	if len(all) != 1 || all[0].EventsProcessed != 3 || len(missing) != 0 {
		t.Fatalf("daemons = %+v, missing %v", all, missing)
	}
	if _, err := a.Send(ctx, "ghost", nil); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("unknown daemon: %v", err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name on b: %v", err)
	}
	if _, err := a.Stop(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, d.ID, []byte("x")); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("after stop: %v", err)
	}
}

func TestRecoveryAfterCleanClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startTest(t, "a", dir)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	d, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	send(t, a, "c", "x")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b := startTest(t, "a", dir)
	if b.ID() != a.ID() {
		t.Fatal("node id changed across restart")
	}
	if b.recovered != 1 {
		t.Fatalf("recovered %d daemons", b.recovered)
	}
	if got := send(t, b, d.ID, "get"); got != "2" {
		t.Fatalf("count after restart = %s, want 2", got)
	}
	// Kinds come back too.
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter"}); err != nil {
		t.Fatalf("kind lost across restart: %v", err)
	}
}
