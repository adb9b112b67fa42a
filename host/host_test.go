package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
)

func counterModule(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "counter-wat", "counter-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRuntime(t testing.TB) *host.Runtime {
	t.Helper()
	rt, err := host.New(context.Background(), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	if _, err := rt.RegisterModule(context.Background(), counterModule(t), "counter"); err != nil {
		t.Fatal(err)
	}
	return rt
}

func deliver(t testing.TB, d *host.Daemon, seq uint64, payload string) string {
	t.Helper()
	outs, err := d.Deliver(context.Background(), host.Event{Seq: seq, Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("deliver %q: %v", payload, err)
	}
	if len(outs) != 1 {
		t.Fatalf("deliver %q: %d outputs, want 1", payload, len(outs))
	}
	return string(outs[0].Payload)
}

// An embedder's whole round: spawn under a seed, feed events, snapshot,
// restore in another runtime under the same seed and continue the count
// and the chain.
func TestSpawnSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	seed := make([]byte, 32)
	seed[0] = 7
	rt := newRuntime(t)
	d, err := rt.Spawn(ctx, "counter", host.SpawnOptions{Name: "c1", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "c1" || d.KindName() != "counter" {
		t.Fatalf("name %q kind %q", d.Name(), d.KindName())
	}
	deliver(t, d, 1, "a")
	if got := deliver(t, d, 2, "b"); got != "2" {
		t.Fatalf("count after two events: %q, want 2", got)
	}
	if got, err := rt.Daemon(d.Origin()); err != nil || got.ID() != d.ID() {
		t.Fatalf("Daemon(origin): %v", err)
	}
	if n := len(rt.Daemons()); n != 1 {
		t.Fatalf("%d daemons, want 1", n)
	}
	data, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, headHash := d.ChainHead()

	rt2 := newRuntime(t)
	r, err := rt2.Restore(ctx, "counter", data, host.SpawnOptions{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if r.EntityID() != d.EntityID() || r.Origin() != d.Origin() {
		t.Fatal("the restored daemon has another identity")
	}
	if h, hh := r.ChainHead(); h != head || hh != headHash {
		t.Fatal("the restored daemon's chain head differs")
	}
	outs, err := r.Deliver(ctx, host.Event{Seq: 3, Payload: []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	if string(outs[0].Payload) != "3" {
		t.Fatalf("restored count: %q, want 3", outs[0].Payload)
	}
	if err := chain.NewValidator(head, headHash).Accept(outs[0].Link, outs[0].Payload); err != nil {
		t.Fatalf("the restored daemon's output does not extend its chain: %v", err)
	}
	if st := r.Stats(); st.EventsProcessed != 3 {
		t.Fatalf("restored stats: %d events, want 3", st.EventsProcessed)
	}
	if err := rt2.Stop(ctx, r.Origin()); err != nil {
		t.Fatal(err)
	}
	if _, err := rt2.Deliver(ctx, r.Origin(), host.Event{Seq: 4, Payload: []byte("d")}); !errors.Is(err, host.ErrDaemonNotFound) {
		t.Fatalf("deliver to a stopped daemon: %v, want ErrDaemonNotFound", err)
	}
}

// Restore refuses what is not the daemon's: another seed, tampered bytes,
// no seed; a seed of the wrong size is refused at spawn.
func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	d, err := rt.Spawn(ctx, "counter", host.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, d, 1, "a")
	data, err := rt.Snapshot(ctx, d.Origin())
	if err != nil {
		t.Fatal(err)
	}
	rt2 := newRuntime(t)
	other := make([]byte, 32)
	if _, err := rt2.Restore(ctx, "counter", data, host.SpawnOptions{Seed: other}); !errors.Is(err, host.ErrSnapshotIdentityMismatch) {
		t.Fatalf("restore under another seed: %v, want ErrSnapshotIdentityMismatch", err)
	}
	if _, err := rt2.Restore(ctx, "counter", data, host.SpawnOptions{}); !errors.Is(err, host.ErrBadSeed) {
		t.Fatalf("restore without a seed: %v, want ErrBadSeed", err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1
	if _, err := rt2.Restore(ctx, "counter", bad, host.SpawnOptions{Seed: other}); !errors.Is(err, host.ErrBadSnapshot) {
		t.Fatalf("restore of tampered bytes: %v, want ErrBadSnapshot", err)
	}
	if _, err := rt2.Spawn(ctx, "counter", host.SpawnOptions{Seed: []byte("short")}); !errors.Is(err, host.ErrBadSeed) {
		t.Fatalf("spawn with a 5-byte seed: %v, want ErrBadSeed", err)
	}
	if _, err := rt2.Spawn(ctx, "nosuch", host.SpawnOptions{}); !errors.Is(err, host.ErrUnknownKind) || !errors.Is(err, engine.ErrUnknownKind) {
		t.Fatalf("spawn of an unknown kind: %v, want ErrUnknownKind (the engine's too)", err)
	}
	if _, err := rt2.RegisterModule(ctx, []byte("\x00asm\x01\x00\x00\x00"), "empty"); !errors.Is(err, host.ErrModuleRefused) {
		t.Fatalf("register an empty module: %v, want ErrModuleRefused", err)
	}
}

// A failed event is an *EventError whose cause is a public sentinel.
func TestEventErrorIsPublic(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "trap.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RegisterModule(ctx, b, "trap"); err != nil {
		t.Fatal(err)
	}
	d, err := rt.Spawn(ctx, "trap", host.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Deliver(ctx, host.Event{Seq: 1, Payload: []byte("trap")})
	var ee *host.EventError
	if !errors.As(err, &ee) || !errors.Is(err, host.ErrGuestTrap) {
		t.Fatalf("a trapping event: %v, want an *EventError with ErrGuestTrap", err)
	}
	if !ee.RolledBack {
		t.Fatal("the trapped event was not rolled back")
	}
}

// LogsAfter follows a daemon's log: each call returns only the new lines.
func TestLogsAfter(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "logcount.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RegisterModule(ctx, b, "logcount"); err != nil {
		t.Fatal(err)
	}
	d, err := rt.Spawn(ctx, "logcount", host.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, d, 1, "a")
	deliver(t, d, 2, "b")
	lines, next := d.LogsAfter(0)
	if len(lines) != 2 || lines[1].Text != "event 2" {
		t.Fatalf("first read: %+v", lines)
	}
	deliver(t, d, 3, "c")
	lines, _ = d.LogsAfter(next)
	if len(lines) != 1 || lines[0].Text != "event 3" {
		t.Fatalf("second read: %+v, want only event 3", lines)
	}
	if n := len(d.Logs()); n != 3 {
		t.Fatalf("Logs: %d lines, want 3", n)
	}
}
