package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// failedTestNode starts a node on dir with a short CPU budget.
func failedTestNode(t *testing.T, dir string, join ...string) *Node {
	t.Helper()
	name := "a"
	if len(join) > 0 {
		name = "b"
	}
	n, err := New(context.Background(), Config{
		DataDir: dir, Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
		Dev: true, CheckpointInterval: -1, Limits: engine.Limits{EventTimeout: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// failedGaugeValue reads wasmesh_daemons_failed.
func failedGaugeValue(t *testing.T, n *Node) float64 {
	t.Helper()
	mfs, err := n.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wasmesh_daemons_failed" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no wasmesh_daemons_failed")
	return 0
}

// A daemon whose start function blows the CPU budget at recovery (a time
// bomb whose time came while the node was down) is failed, first-class:
// listed with the reason, sends, snapshots and migrations refused with
// ErrDaemonFailed naming the budget, its name taken, counted in metrics,
// kept across another restart; stop removes it for good and frees the
// name. The honest daemon beside it comes back with its count.
func TestRecoveryFailureIsAFailedDaemon(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Now().Add(2 * time.Second)
	bomb, err := examples.TimeBomb(at)
	if err != nil {
		t.Fatal(err)
	}
	a := failedTestNode(t, dir)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deploy(ctx, bomb, "bomb"); err != nil {
		t.Fatal(err)
	}
	b, err := a.Spawn(ctx, SpawnRequest{Kind: "bomb", Name: "b"})
	if err != nil {
		t.Fatalf("spawn before the bomb's time: %v", err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		send(t, a, "b", "x")
		send(t, a, "c", "x")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(at) + 50*time.Millisecond)

	for restart := 1; restart <= 2; restart++ {
		a = failedTestNode(t, dir)
		ls := a.LocalDaemons()
		if len(ls) != 2 || ls[0].Name != "b" || ls[0].ID != b.ID || !ls[0].Failed ||
			!strings.Contains(ls[0].LastError, engine.ErrEventTimeout.Error()) || ls[1].Name != "c" || ls[1].Failed {
			t.Fatalf("restart %d: listed %+v, want b failed on the CPU budget and c running", restart, ls)
		}
		if got := send(t, a, "c", "get"); got != "3" {
			t.Fatalf("restart %d: honest count %s, want 3", restart, got)
		}
		if info, err := a.Daemon(ctx, "b"); err != nil || !info.Failed || info.ID != b.ID {
			t.Fatalf("restart %d: stats of b: %+v, %v", restart, info, err)
		}
		for what, err := range map[string]error{
			"send":     errOf(a.Send(ctx, "b", []byte("x"))),
			"send id":  errOf(a.Send(ctx, b.ID, []byte("x"))),
			"snapshot": errOf3(a.Snapshot(ctx, "b")),
			"migrate":  errOf(a.Migrate(ctx, MigrateRequest{Ref: "b", To: "elsewhere"}, nil)),
		} {
			if !errors.Is(err, ErrDaemonFailed) || !strings.Contains(err.Error(), engine.ErrEventTimeout.Error()) ||
				ClassOf(err).Code != CodeDaemonFailed || ClassOf(err).Exit != 1 {
				t.Fatalf("restart %d: %s of the failed daemon: %v, want ErrDaemonFailed naming the CPU budget", restart, what, err)
			}
		}
		if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "b"}); !errors.Is(err, ErrNameTaken) {
			t.Fatalf("restart %d: spawn under the failed daemon's name: %v, want ErrNameTaken", restart, err)
		}
		if v := failedGaugeValue(t, a); v != 1 {
			t.Fatalf("restart %d: wasmesh_daemons_failed = %v, want 1", restart, v)
		}
		// The failed daemon keeps its own history in the journal, not every
		// segment from before the restart.
		if holdsRecoveryJournal(a) {
			t.Fatalf("restart %d: the whole journal from before the restart is held for a failed daemon", restart)
		}
		if restart == 1 {
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Through another node: found, refused with the reason, stopped.
	peer := failedTestNode(t, t.TempDir(), a.GossipAddr())
	waitPeers(t, peer, 1)
	waitPeers(t, a, 1)
	if _, err := peer.Send(ctx, "b", []byte("x")); !errors.Is(err, ErrDaemonFailed) || !strings.Contains(err.Error(), engine.ErrEventTimeout.Error()) {
		t.Fatalf("send through a peer: %v, want ErrDaemonFailed naming the CPU budget", err)
	}
	if info, err := peer.Daemon(ctx, "b"); err != nil || !info.Failed {
		t.Fatalf("stats through a peer: %+v, %v", info, err)
	}
	info, err := peer.Stop(ctx, "b")
	if err != nil || info.ID != b.ID {
		t.Fatalf("stop of the failed daemon through a peer: %+v, %v", info, err)
	}
	if ls := a.LocalDaemons(); len(ls) != 1 || ls[0].Name != "c" {
		t.Fatalf("after stop: %+v", ls)
	}
	if _, err := a.Send(ctx, "b", []byte("x")); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("send after stop: %v, want ErrDaemonNotFound", err)
	}
	if _, err := a.store.Get(mustOrigin(t, b.ID)); err == nil {
		t.Fatal("the failed daemon's record survived its stop")
	}
	if v := failedGaugeValue(t, a); v != 0 {
		t.Fatalf("wasmesh_daemons_failed after stop = %v", v)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "b"}); err != nil {
		t.Fatalf("the name of a removed failed daemon is not free: %v", err)
	}
	if got := send(t, a, "b", "x"); got != "1" {
		t.Fatalf("the new b answered %s", got)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a = failedTestNode(t, dir)
	if ls := a.LocalDaemons(); len(ls) != 2 || ls[0].Failed || ls[1].Failed {
		t.Fatalf("after the next restart: %+v", ls)
	}
}

func mustOrigin(t *testing.T, id string) uint64 {
	t.Helper()
	o, err := abi.ParseOrigin(id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// holdsRecoveryJournal reports whether the journal from before the restart
// is still held.
func holdsRecoveryJournal(n *Node) bool {
	n.ckptMu.Lock()
	defer n.ckptMu.Unlock()
	return n.recoveryJournal != nil
}

func errOf[T any](_ T, err error) error          { return err }
func errOf3[T, U any](_ T, _ U, err error) error { return err }

// A daemon that failed at recovery (here its stored checkpoint no longer
// decodes) comes back with `restore` of a good snapshot: running again,
// with the snapshot's count, no longer listed failed or counted.
func TestFailedDaemonRestored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := failedTestNode(t, dir)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		send(t, a, "c", "x")
	}
	good, _, err := a.Snapshot(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(layout{root: dir}.store())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSnapshot(mustOrigin(t, c.ID), time.Now(), []byte("not a snapshot")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	a = failedTestNode(t, dir)
	if ls := a.LocalDaemons(); len(ls) != 1 || !ls[0].Failed || ls[0].ID != c.ID {
		t.Fatalf("with a broken checkpoint: %+v, want c failed", ls)
	}
	if _, err := a.Send(ctx, "c", []byte("x")); !errors.Is(err, ErrDaemonFailed) {
		t.Fatalf("send to the failed daemon: %v", err)
	}
	if _, err := a.Restore(ctx, good, ""); err != nil {
		t.Fatalf("restore of the failed daemon: %v", err)
	}
	if ls := a.LocalDaemons(); len(ls) != 1 || ls[0].Failed || ls[0].Name != "c" {
		t.Fatalf("after restore: %+v, want c running", ls)
	}
	if got := send(t, a, "c", "x"); got != "4" {
		t.Fatalf("count after restore = %s, want 4 (the snapshot's 3, plus one)", got)
	}
	if v := failedGaugeValue(t, a); v != 0 {
		t.Fatalf("wasmesh_daemons_failed after restore = %v", v)
	}
}
