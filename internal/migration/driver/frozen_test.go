package driver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
)

// TestFreezeWaitsForASlot: with one freeze slot, a migration whose daemon
// is frozen (A, held in its target's go-live) keeps a second migration (B)
// from freezing its daemon: B's daemon goes on serving events on the
// source, unfrozen, and B moves once A hands over. Without the admission B
// would freeze beside A, and the events sent to it would be applied on its
// new node.
func TestFreezeWaitsForASlot(t *testing.T) {
	g := newGate()
	c := drivertest.NewWith(t, 3, driver.Config{Timing: fastTiming, MaxFrozen: 1, Hooks: driver.Hooks{Resubscribe: g.hold}})
	a, b, via := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	t.Cleanup(g.open)
	dA, _ := spawnCounter(t, a)
	dB, _ := spawnCounter(t, a)
	g.origin = dA.Origin()
	for _, d := range []*engine.Daemon{dA, dB} {
		via.EP.Routes().Set(d.Origin(), a.EP.ID(), 1)
	}

	hA, err := a.Mig.StartMigration(context.Background(), dA.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-hA.Done():
		t.Fatalf("A's migration ended (%v) without going live through the hook", hA.Wait(context.Background()))
	}
	hB, err := a.Mig.StartMigration(context.Background(), dB.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	const k = 10
	for i := 1; i <= k; i++ {
		if _, err := send(context.Background(), via, dB.Origin(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if !hB.Stats().FrozenAt.IsZero() {
		t.Fatal("B froze while A held the only freeze slot")
	}
	select {
	case <-hB.Done():
		t.Fatalf("B's migration ended (%v) while A held the only freeze slot", hB.Wait(context.Background()))
	default:
	}
	if _, err := a.RT.Daemon(dB.Origin()); err != nil {
		t.Fatalf("B is not on the source while it waits: %v", err)
	}
	if n := get(t, a, dB.Origin()); n != k {
		t.Fatalf("B counted %d on the source, want %d", n, k)
	}

	g.open()
	for name, h := range map[string]*driver.Handle{"A": hA, "B": hB} {
		if err := h.WaitTimeout(20 * time.Second); err != nil {
			t.Fatalf("%s's migration: %v", name, err)
		}
	}
	for name, d := range map[string]*engine.Daemon{"A": dA, "B": dB} {
		if _, err := a.RT.Daemon(d.Origin()); !errors.Is(err, engine.ErrDaemonNotFound) {
			t.Fatalf("%s still on the source: %v", name, err)
		}
	}
	if n := get(t, via, dB.Origin()); n != k {
		t.Fatalf("B counted %d after its move, want %d", n, k)
	}
}
