package migrator_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/host/identity"
	"github.com/wasmesh/wasmesh/migration"
	"github.com/wasmesh/wasmesh/migrator/migratortest"
)

type testNode = migratortest.Node

func newCluster(t testing.TB, n int, timing migration.Timing) *migratortest.Cluster {
	return migratortest.New(t, n, timing)
}

func counterModule(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "counter-wat", "counter-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spawnCounter(t *testing.T, n *testNode) (*host.Daemon, identity.Identity) {
	t.Helper()
	k, err := n.RT.RegisterModule(context.Background(), counterModule(t), "counter")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.Generate()
	d, err := n.RT.Spawn(context.Background(), string(k.Digest), id, host.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, id
}

func fixtureBytes(t testing.TB, dir, file string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", dir, file))
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
