package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// A start section or wasmesh_init that never returns fails the spawn with
// ErrEventTimeout (it runs under the event budget), and the runtime keeps
// serving other daemons afterwards.
func TestSpawnGuestCodeRunsUnderBudget(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"start_loop": fixture(t, "start_loop.wasm"),
		"init_loop":  fixture(t, "init_loop.wasm"),
		"counter":    example(t, "counter-wat", "counter-wat.wasm"),
	})
	lim := engine.Limits{EventTimeout: 50 * time.Millisecond}
	for _, kind := range []string{"start_loop", "init_loop"} {
		_, err := rt.Spawn(ctxTimeout(t, time.Minute), kind, newID(t), engine.SpawnOptions{Limits: lim})
		if !errors.Is(err, engine.ErrEventTimeout) {
			t.Fatalf("%s: spawn err = %v, want ErrEventTimeout", kind, err)
		}
		if n := len(rt.Daemons()); n != 0 {
			t.Fatalf("%s: %d daemons registered after a failed spawn", kind, n)
		}
	}
	d := spawn(t, rt, "counter", engine.SpawnOptions{})
	for i := 0; i < 5; i++ {
		send(t, d, "x")
	}
	if got := send(t, d, "get"); got[0] != "5" {
		t.Fatalf("counter after failed spawns: %q, want 5", got)
	}
}

// The time bomb's start function loops once the clock passes 1e18 ns: it
// spawns before that; after the clock moves, a trapping event's rollback
// re-runs the start function, which is stopped by the budget and leaves
// the daemon failed rather than hanging with its lock held.
func TestRollbackStartFunctionUnderBudget(t *testing.T) {
	var late atomic.Bool
	clock := func() time.Time {
		if late.Load() {
			return time.Unix(0, 1_000_000_000_000_000_000+1)
		}
		return time.Unix(0, 0)
	}
	rt := newRuntime(t, engine.Config{Clock: clock})
	ctx := context.Background()
	for alias, m := range map[string][]byte{"bomb": fixture(t, "timebomb_start.wasm"), "counter": example(t, "counter-wat", "counter-wat.wasm")} {
		if _, err := rt.RegisterModule(ctx, m, alias); err != nil {
			t.Fatalf("register %s: %v", alias, err)
		}
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	bomb := spawn(t, rt, "bomb", engine.SpawnOptions{Limits: engine.Limits{EventTimeout: 50 * time.Millisecond}})
	other := spawn(t, rt, "counter", engine.SpawnOptions{})
	send(t, bomb, "x")
	send(t, other, "x")
	late.Store(true)
	_, err := bomb.Deliver(ctxTimeout(t, time.Minute), engine.Event{Payload: []byte("trap")})
	var ee *engine.EventError
	if !errors.As(err, &ee) || !errors.Is(err, engine.ErrGuestTrap) || ee.RolledBack || !strings.Contains(err.Error(), engine.ErrEventTimeout.Error()) {
		t.Fatalf("trap with a looping start function: err = %v, want a trap that could not roll back, naming the CPU budget", err)
	}
	if st := bomb.Stats(); !st.Failed {
		t.Fatalf("bomb not failed after its rollback blew the budget: %+v", st)
	}
	_, err = bomb.Deliver(ctx, engine.Event{Payload: []byte("x")})
	if !errors.Is(err, engine.ErrDaemonFailed) || !strings.Contains(err.Error(), engine.ErrEventTimeout.Error()) {
		t.Fatalf("event to the failed bomb: err = %v, want ErrDaemonFailed naming the CPU budget", err)
	}
	for i := 0; i < 5; i++ {
		send(t, other, "x")
	}
	if got := send(t, other, "get"); got[0] != "6" {
		t.Fatalf("bystander count %q, want 6", got)
	}
}

// A snapshot of the time bomb arriving on a runtime whose clock is past
// its time (a migration arrival, restore or recovery) fails with the CPU
// budget error instead of hanging, and that runtime keeps serving.
func TestSpawnFromSnapshotStartFunctionUnderBudget(t *testing.T) {
	ctx := context.Background()
	bomb := fixture(t, "timebomb_start.wasm")
	early := newRuntime(t, engine.Config{Clock: func() time.Time { return time.Unix(0, 0) }})
	late := newRuntime(t, engine.Config{})
	for _, rt := range []*engine.Runtime{early, late} {
		if _, err := rt.RegisterModule(ctx, bomb, "bomb"); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := late.RegisterModule(ctx, example(t, "counter-wat", "counter-wat.wasm"), "counter"); err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	lim := engine.Limits{EventTimeout: 50 * time.Millisecond}
	d, err := early.Spawn(ctx, "bomb", id, engine.SpawnOptions{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	send(t, d, "x")
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = late.SpawnFromSnapshot(ctxTimeout(t, time.Minute), "bomb", id, snap, engine.SpawnOptions{Limits: lim})
	if !errors.Is(err, engine.ErrEventTimeout) {
		t.Fatalf("arrival of the time bomb: err = %v, want ErrEventTimeout", err)
	}
	c := spawn(t, late, "counter", engine.SpawnOptions{})
	if got := send(t, c, "x"); got[0] != "1" {
		t.Fatalf("counter after the failed arrival: %q", got)
	}
}

// The CPU time a runaway call is charged covers its whole budget: the
// watchdog samples it at its sweeps, and the sweep that preempts the call
// is at least a budget after the one that first charged it. The error
// names the cause and the budget.
func TestRunawayChargedItsBudget(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"loop": fixture(t, "loop.wasm"), "recurse": fixture(t, "recurse.wasm")})
	budget := 30 * time.Millisecond
	for _, kind := range []string{"loop", "recurse"} {
		d := spawn(t, rt, kind, engine.SpawnOptions{Limits: engine.Limits{EventTimeout: budget}})
		_, err := d.Deliver(ctxTimeout(t, time.Minute), engine.Event{Payload: []byte("go")})
		var ee *engine.EventError
		if !errors.As(err, &ee) || !errors.Is(err, engine.ErrEventTimeout) || !strings.Contains(err.Error(), "budget "+budget.String()) {
			t.Fatalf("%s: err = %v, want ErrEventTimeout naming the budget", kind, err)
		}
		if st := d.Stats(); st.CPUTime < budget {
			t.Fatalf("%s: charged %v of CPU time for a call stopped at its budget of %v", kind, st.CPUTime, budget)
		}
	}
}
