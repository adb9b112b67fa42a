package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// A record whose module is gone at startup is neither dropped nor silently
// skipped: it is listed as failed with the reason, keeps its name, and comes
// back from its checkpoint once a peer that has the module joins.
func TestMissingModuleWaitsThenRecovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startTest(t, "a", dir)
	k, err := a.Deploy(ctx, examples.CounterWAT(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		send(t, a, "c", "x")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "modules")); err != nil {
		t.Fatal(err)
	}

	a = startTest(t, "a", dir)
	ls := a.LocalDaemons()
	if len(ls) != 1 || ls[0].ID != d.ID || ls[0].Name != "c" || !ls[0].Failed ||
		!strings.Contains(ls[0].LastError, k.Digest) || !strings.Contains(ls[0].LastError, "fetching it from peers") {
		t.Fatalf("waiting daemon listed as %+v", ls)
	}
	if info, err := a.Daemon(ctx, "c"); err != nil || info.ID != d.ID || !info.Failed {
		t.Fatalf("stats of the waiting daemon: %+v, %v", info, err)
	}
	// Its name stays reserved while it waits.
	other, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "logcount.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deploy(ctx, other, "logcount"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "logcount", Name: "c"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("spawn under the waiting daemon's name: %v", err)
	}

	// A peer with the module joins: the daemon comes back with its count.
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	if _, err := b.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if dd, ok := a.findLocal("c"); ok && dd.ID() == d.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not back; listed as %+v", a.LocalDaemons())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := send(t, a, "c", "get"); got != "3" {
		t.Fatalf("count after the module was fetched = %s, want 3", got)
	}
	if ls := a.LocalDaemons(); len(ls) != 1 || ls[0].Failed || ls[0].EventsProcessed != 4 {
		t.Fatalf("after recovery: %+v", ls)
	}
	// The fetched module is on disk now: the next restart needs no peer.
	if _, err := a.layout.loadModule(k.Digest); err != nil {
		t.Fatalf("fetched module not stored: %v", err)
	}
}
