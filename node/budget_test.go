package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/store"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// A daemon whose start function loops forever at recovery (here: its
// record survived a crash between record and spawn) is listed failed; the
// node comes up and its honest daemon keeps its count.
func TestRecoveryOfHostileStartLeavesNodeHealthy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startTest(t, "a", dir)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	bomb, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "start_loop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := a.Deploy(ctx, bomb, "bomb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		send(t, a, "c", "x")
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "bomb", Name: "b"}); !errors.Is(err, engine.ErrEventTimeout) {
		t.Fatalf("spawn of a looping start function: %v, want ErrEventTimeout", err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.Create(store.Record{Origin: id.Origin(), Name: "b", Digest: k.Digest, Seed: id.Seed(), Epoch: 1, Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	a = startTest(t, "a", dir)
	if ls := a.LocalDaemons(); len(ls) != 2 || ls[0].Name != "b" || !ls[0].Failed || ls[1].Name != "c" || ls[1].Failed {
		t.Fatalf("after restart: %+v, want b failed and c running", ls)
	}
	if got := send(t, a, "c", "x"); got != "4" {
		t.Fatalf("count after restart = %s, want 4", got)
	}
}
