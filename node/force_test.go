package node

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

func TestDeployRefusesRepointingAKindWithoutForce(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	counter := examples.CounterWAT()
	other, err := os.ReadFile("../plugins/examples/testdata/logcount.wasm")
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.Deploy(ctx, counter, "counter")
	if err != nil {
		t.Fatal(err)
	}
	// The same module again under its own name is not a re-point.
	if _, err := a.Deploy(ctx, counter, "counter"); err != nil {
		t.Fatalf("redeploy of the same module: %v", err)
	}
	_, err = a.Deploy(ctx, other, "counter")
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), first.Digest) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("re-point without force: %v", err)
	}
	if c := ClassOf(err); c.Code != CodeNameTaken {
		t.Fatalf("re-point without force is class %s, want %s", c.Code, CodeNameTaken)
	}
	if k, err := a.rt.Kind("counter"); err != nil || string(k.Digest) != first.Digest {
		t.Fatalf("refused deploy moved the kind name: %v %v", k, err)
	}
	moved, err := a.DeployForce(ctx, other, "counter", true)
	if err != nil {
		t.Fatalf("re-point with force: %v", err)
	}
	if k, err := a.rt.Kind("counter"); err != nil || string(k.Digest) != moved.Digest || moved.Digest == first.Digest {
		t.Fatalf("forced deploy did not move the kind name: %v %v", k, err)
	}
	if _, err := a.Deploy(ctx, counter, "bad\x1bname"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("kind name with ESC: %v", err)
	}
}

func TestRestoreRefusesRollingBackWithoutForce(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		send(t, a, "c", "x")
	}
	old, _, err := a.Snapshot(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot level with the daemon is no rollback.
	if _, err := a.Restore(ctx, old, ""); err != nil {
		t.Fatalf("restore of a current snapshot: %v", err)
	}
	for range 7 {
		send(t, a, "c", "x")
	}
	_, err = a.Restore(ctx, old, "")
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "7 events behind") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("rollback without force: %v", err)
	}
	if c := ClassOf(err); c.Code != CodeBadRequest || c.Exit != 2 {
		t.Fatalf("rollback without force is class %s exit %d, want %s exit 2", c.Code, c.Exit, CodeBadRequest)
	}
	if got := send(t, a, "c", "get"); got != "10" {
		t.Fatalf("count after a refused rollback = %s, want 10", got)
	}
	if _, err := a.RestoreForce(ctx, old, "", "", true); err != nil {
		t.Fatalf("rollback with force: %v", err)
	}
	if got := send(t, a, "c", "get"); got != "3" {
		t.Fatalf("count after a forced rollback = %s, want 3", got)
	}
}
