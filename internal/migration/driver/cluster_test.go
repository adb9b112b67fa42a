package driver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

type testNode = drivertest.Node

func newCluster(t testing.TB, n int, timing protocol.Timing) *drivertest.Cluster {
	return drivertest.New(t, n, timing)
}

func counterModule(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "plugins", "examples", "counter-wat", "counter-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spawnCounter(t *testing.T, n *testNode) (*engine.Daemon, identity.Identity) {
	t.Helper()
	k, err := n.RT.RegisterModule(context.Background(), counterModule(t), "counter")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.Generate()
	d, err := n.RT.Spawn(context.Background(), string(k.Digest), id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, id
}

func fixtureBytes(t testing.TB, dir, file string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "plugins", "examples", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newIdentity(t testing.TB) identity.Identity {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
