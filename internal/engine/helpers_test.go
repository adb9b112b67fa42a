package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "examples", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func example(t testing.TB, dir, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "examples", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRuntime(t testing.TB, cfg engine.Config) *engine.Runtime {
	t.Helper()
	ctx := context.Background()
	rt, err := engine.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func readyRuntime(t testing.TB, modules map[string][]byte) *engine.Runtime {
	t.Helper()
	rt := newRuntime(t, engine.Config{})
	for alias, m := range modules {
		if _, err := rt.RegisterModule(context.Background(), m, alias); err != nil {
			t.Fatalf("register %s: %v", alias, err)
		}
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rt
}

func newID(t testing.TB) identity.Identity {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func spawn(t testing.TB, rt *engine.Runtime, kind string, opts engine.SpawnOptions) *engine.Daemon {
	t.Helper()
	d, err := rt.Spawn(context.Background(), kind, newID(t), opts)
	if err != nil {
		t.Fatalf("spawn %s: %v", kind, err)
	}
	return d
}

func send(t testing.TB, d *engine.Daemon, payload string) []string {
	t.Helper()
	outs, err := d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: 1, Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("deliver %q: %v", payload, err)
	}
	var s []string
	for _, o := range outs {
		s = append(s, string(o.Payload))
	}
	return s
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
