package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

func TestLifecycleGate(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t, engine.Config{})
	echo := example(t, "echo-wat", "echo-wat.wasm")
	if _, err := rt.RegisterModule(ctx, echo, "echo"); err != nil {
		t.Fatalf("register while Registering: %v", err)
	}
	if _, err := rt.Spawn(ctx, "echo", newID(t), engine.SpawnOptions{}); !errors.Is(err, engine.ErrNotReady) {
		t.Fatalf("spawn before Start: %v", err)
	}
	if _, err := rt.Deliver(ctx, 1, engine.Event{}); !errors.Is(err, engine.ErrNotReady) {
		t.Fatalf("deliver before Start: %v", err)
	}
	if _, err := rt.Snapshot(ctx, 1); !errors.Is(err, engine.ErrNotReady) {
		t.Fatalf("snapshot before Start: %v", err)
	}
	if err := rt.AcceptsMigrations(); !errors.Is(err, engine.ErrNotReady) {
		t.Fatalf("migration before Start: %v", err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if _, err := rt.RegisterModule(ctx, example(t, "counter-wat", "counter-wat.wasm"), "counter"); err != nil {
		t.Fatalf("register while Ready: %v", err)
	}
	d := spawn(t, rt, "echo", engine.SpawnOptions{})
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := rt.Spawn(ctx, "echo", newID(t), engine.SpawnOptions{}); !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("spawn after Shutdown: %v", err)
	}
	if _, err := rt.Deliver(ctx, d.Origin(), engine.Event{}); !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("deliver after Shutdown: %v", err)
	}
	if _, err := d.Deliver(ctx, engine.Event{}); !errors.Is(err, engine.ErrDaemonStopped) {
		t.Fatalf("held daemon after Shutdown: %v", err)
	}
	if err := rt.Start(ctx); !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if _, err := rt.RegisterModule(ctx, echo, "echo2"); !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("register after Shutdown: %v", err)
	}
	// R-L6: stopping an already-swept daemon during shutdown is success.
	if err := rt.Stop(ctx, d.Origin()); err != nil {
		t.Fatalf("stop of swept daemon: %v", err)
	}
	// Shutdown clears kinds.
	if _, err := rt.Kind("echo"); !errors.Is(err, engine.ErrUnknownKind) {
		t.Fatalf("kind after Shutdown: %v", err)
	}
}

func TestStopUnknownIsNotFound(t *testing.T) {
	rt := readyRuntime(t, nil)
	if err := rt.Stop(context.Background(), 42); !errors.Is(err, engine.ErrDaemonNotFound) {
		t.Fatalf("stop unknown: %v", err)
	}
}

// R-L2: a Start that loses the race to Shutdown removes what it installed.
func TestStartLosesRaceToShutdown(t *testing.T) {
	var installed, removed atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	rt := newRuntime(t, engine.Config{
		OnStart: func() func() {
			installed.Add(1)
			return func() { removed.Add(1) }
		},
		Hooks: &engine.TestHooks{StartStall: func() { close(entered); <-release }},
	})
	errc := make(chan error, 1)
	go func() { errc <- rt.Start(context.Background()) }()
	<-entered
	if err := rt.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("Start = %v, want ErrShuttingDown", err)
	}
	if installed.Load() != 1 || removed.Load() != 1 {
		t.Fatalf("installed %d, removed %d; want 1 and 1", installed.Load(), removed.Load())
	}
}

// The handler is installed before Ready is visible, and removed at Shutdown.
func TestStartInstallsBeforeReady(t *testing.T) {
	var rt *engine.Runtime
	var stateAtInstall engine.State
	var removed atomic.Int32
	rt = newRuntime(t, engine.Config{OnStart: func() func() {
		stateAtInstall = rt.State()
		return func() { removed.Add(1) }
	}})
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stateAtInstall != engine.Registering {
		t.Fatalf("handler installed in state %v", stateAtInstall)
	}
	rt.Shutdown(context.Background())
	if removed.Load() != 1 {
		t.Fatal("Shutdown did not remove the handler")
	}
}

// R-L4: a spawn racing Shutdown never leaves a daemon registered.
func TestSpawnRacingShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rt := newRuntime(t, engine.Config{Hooks: &engine.TestHooks{SpawnStall: func() {
		once.Do(func() { close(entered); <-release })
	}}})
	ctx := context.Background()
	if _, err := rt.RegisterModule(ctx, example(t, "echo-wat", "echo-wat.wasm"), "echo"); err != nil {
		t.Fatal(err)
	}
	rt.Start(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := rt.Spawn(ctx, "echo", newID(t), engine.SpawnOptions{})
		errc <- err
	}()
	<-entered
	rt.Shutdown(ctx)
	close(release)
	if err := <-errc; !errors.Is(err, engine.ErrShuttingDown) {
		t.Fatalf("spawn = %v, want ErrShuttingDown", err)
	}
	if n := len(rt.Daemons()); n != 0 {
		t.Fatalf("%d daemons registered after racing shutdown", n)
	}
}

// R-L4: two daemons never share an origin; the loser does not disturb the incumbent.
func TestDuplicateOrigin(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"counter": example(t, "counter-wat", "counter-wat.wasm")})
	ctx := context.Background()
	id := newID(t)
	inc, err := rt.Spawn(ctx, "counter", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, inc, "x")
	var wg sync.WaitGroup
	var wins atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rt.Spawn(ctx, "counter", id, engine.SpawnOptions{}); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, engine.ErrDuplicateOrigin) {
				t.Errorf("duplicate spawn: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 0 {
		t.Fatalf("%d duplicate spawns succeeded", wins.Load())
	}
	got, err := rt.Daemon(id.Origin())
	if err != nil || got != inc {
		t.Fatalf("incumbent replaced: %v", err)
	}
	if out := send(t, inc, "x"); out[0] != "2" {
		t.Fatalf("incumbent disturbed: %q", out)
	}
}

// Concurrent spawns of distinct daemons racing a shutdown: whatever wins,
// nothing stays registered and nothing crashes (run under -race).
func TestConcurrentSpawnShutdownStress(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"echo": example(t, "echo-wat", "echo-wat.wasm")})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := rt.Spawn(ctx, "echo", newID(t), engine.SpawnOptions{})
			if err == nil {
				d.Deliver(ctx, engine.Event{Payload: []byte("x")})
			} else if !errors.Is(err, engine.ErrShuttingDown) {
				t.Errorf("spawn: %v", err)
			}
		}()
	}
	rt.Shutdown(ctx)
	wg.Wait()
	if n := len(rt.Daemons()); n != 0 {
		t.Fatalf("%d daemons left after shutdown", n)
	}
}

func TestMigrationNotReadyHookAndFailureCache(t *testing.T) {
	rt := readyRuntime(t, nil)
	if err := rt.AcceptsMigrations(); err != nil {
		t.Fatal(err)
	}
	rt.SetMigrationNotReady(true)
	if err := rt.AcceptsMigrations(); !errors.Is(err, engine.ErrNotReady) {
		t.Fatalf("forced not ready: %v", err)
	}
	rt.SetMigrationNotReady(false)
	boom := errors.New("boom")
	rt.RecordMigrationFailure(5, boom)
	if rt.PeekMigrationFailure(5) != boom {
		t.Fatal("failure not cached")
	}
	rt.Shutdown(context.Background())
	if rt.PeekMigrationFailure(5) != nil {
		t.Fatal("Shutdown kept cached migration failures")
	}
}
