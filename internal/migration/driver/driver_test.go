package driver_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
)

// gate holds the first call for one daemon until released.
type gate struct {
	origin  uint64
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	rel     sync.Once
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hold(origin uint64) {
	if origin != g.origin {
		return
	}
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
}

func (g *gate) open() { g.rel.Do(func() { close(g.release) }) }

// TestSlowEffectDoesNotDelayOtherMigration: while daemon A's target side
// is stuck in the work that follows its held events at go-live (applying
// them runs guest code; the node's Resubscribe hook, held here, runs right
// after, in the same batch), daemon B migrates between the same two nodes
// and completes. Then A is released, and both end on the target with their
// exact counts. A migrator that performs effects under its lock cannot
// pass: B's messages would wait behind A's hook on the target.
func TestSlowEffectDoesNotDelayOtherMigration(t *testing.T) {
	g := newGate()
	c := drivertest.NewWith(t, 3, driver.Config{Timing: fastTiming, Hooks: driver.Hooks{Resubscribe: g.hold}})
	a, b, via := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	t.Cleanup(g.open) // before the nodes close (cleanups run last first)
	dA, _ := spawnCounter(t, a)
	dB, _ := spawnCounter(t, a)
	g.origin = dA.Origin()
	const k = 20
	for _, d := range []*engine.Daemon{dA, dB} {
		via.EP.Routes().Set(d.Origin(), a.EP.ID(), 1)
		for i := 1; i <= k; i++ {
			if _, err := send(context.Background(), via, d.Origin(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
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
	// A deadline, not a measurement: B needs a few round trips on
	// loopback; behind A's held hook it would never finish.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hB.Wait(ctx); err != nil {
		t.Fatalf("B's migration while A's go-live is held: %v", err)
	}
	select {
	case <-hA.Done():
		t.Fatal("A finished while its hook was still held")
	default:
	}
	for i := k + 1; i <= 2*k; i++ {
		if _, err := send(context.Background(), via, dB.Origin(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
			t.Fatalf("event to B after its move: %v", err)
		}
	}

	g.open()
	if err := hA.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("A's migration after release: %v", err)
	}
	for i := k + 1; i <= 2*k; i++ {
		if _, err := send(context.Background(), via, dA.Origin(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
			t.Fatalf("event to A after its move: %v", err)
		}
	}
	for name, d := range map[string]*engine.Daemon{"A": dA, "B": dB} {
		if _, err := a.RT.Daemon(d.Origin()); !errors.Is(err, engine.ErrDaemonNotFound) {
			t.Fatalf("%s still on the source: %v", name, err)
		}
		if _, err := b.RT.Daemon(d.Origin()); err != nil {
			t.Fatalf("%s not on the target: %v", name, err)
		}
		if n := get(t, via, d.Origin()); n != 2*k {
			t.Fatalf("%s counted %d events, want %d", name, n, 2*k)
		}
	}
}

// TestSlowResumedEventDoesNotDelayOtherMigration: daemon A's migration is
// refused by the target while an event for A waits in the source's
// buffer, so the source takes A back and applies that event; its delivery
// is held (an observer of A blocks inside it). Meanwhile daemon B starts
// and completes a migration off the same node. Then A's event is
// released: its sender gets the outputs, A stays with its exact count,
// B arrives with its own. A migrator that applies resumed events under its
// lock cannot pass: B's start would wait behind A's event.
func TestSlowResumedEventDoesNotDelayOtherMigration(t *testing.T) {
	admitting, refuse := newGate(), make(chan struct{})
	var refuseOnce sync.Once
	openRefuse := func() { refuseOnce.Do(func() { close(refuse) }) }
	hooks := driver.Hooks{Admit: func(origin uint64) error {
		if origin != admitting.origin {
			return nil
		}
		admitting.once.Do(func() { close(admitting.entered) })
		<-refuse
		return errors.New("refused by the test")
	}}
	c := drivertest.NewWith(t, 2, driver.Config{Hooks: hooks})
	a, b := c.Nodes[0], c.Nodes[1]
	dA, _ := spawnCounter(t, a)
	dB, _ := spawnCounter(t, a)
	admitting.origin = dA.Origin()
	slow := newGate()
	slow.origin = 77 // the sender whose event is held
	t.Cleanup(slow.open)
	t.Cleanup(openRefuse)
	obs := dA.Observe(func(ev engine.Event, _ []engine.Output) { slow.hold(ev.Sender) })
	defer obs.Close()
	const k = 10
	for _, d := range []*engine.Daemon{dA, dB} {
		for i := 1; i <= k; i++ {
			if _, err := d.Deliver(context.Background(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}

	hA, err := a.Mig.StartMigration(context.Background(), dA.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	<-admitting.entered // A is frozen: its snapshot went out
	type result struct {
		outs []engine.Output
		err  error
	}
	slowDone := make(chan result, 1)
	go func() {
		outs, err := dA.Deliver(context.Background(), engine.Event{Sender: 77, Seq: 1, Payload: []byte("x")})
		slowDone <- result{outs, err}
	}()
	for deadline := time.Now().Add(20 * time.Second); hA.Stats().EventsBuffered == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A's event never reached the source machine's buffer")
		}
	}
	openRefuse()
	select {
	case <-slow.entered:
	case r := <-slowDone:
		t.Fatalf("A's buffered event finished without being held: %v %v", r.outs, r.err)
	}

	bDone := make(chan error, 1)
	go func() {
		hB, err := a.Mig.StartMigration(context.Background(), dB.Origin(), a.ID, b.ID)
		if err == nil {
			err = hB.Wait(context.Background())
		}
		bDone <- err
	}()
	// A deadline, not a measurement: behind A's held event B would never
	// even start.
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("B's migration while A's resumed event is held: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("B's migration did not finish while A's resumed event was held")
	}
	select {
	case r := <-slowDone:
		t.Fatalf("A's event answered while still held: %v %v", r.outs, r.err)
	default:
	}

	slow.open()
	r := <-slowDone
	if r.err != nil || len(r.outs) != 1 || string(r.outs[0].Payload) != "11" {
		t.Fatalf("A's held event: %v %v", r.outs, r.err)
	}
	if err := hA.Wait(context.Background()); err == nil {
		t.Fatal("A's refused migration reports success")
	}
	if _, err := a.RT.Daemon(dA.Origin()); err != nil {
		t.Fatalf("A left the source: %v", err)
	}
	if n := get(t, a, dA.Origin()); n != k+1 {
		t.Fatalf("A counted %d, want %d", n, k+1)
	}
	if _, err := b.RT.Daemon(dB.Origin()); err != nil {
		t.Fatalf("B not on the target: %v", err)
	}
	if n := get(t, b, dB.Origin()); n != k {
		t.Fatalf("B counted %d, want %d", n, k)
	}
}

// TestWaitReturnsAfterSourceReleased: when the orchestrator runs on the
// source, Wait returns only after the source released the daemon (the
// node's Released hook, held here, returned and the runtime no longer
// hosts it), as when effects ran inside dispatch.
func TestWaitReturnsAfterSourceReleased(t *testing.T) {
	g := newGate()
	c := drivertest.NewWith(t, 2, driver.Config{Timing: fastTiming, Hooks: driver.Hooks{Released: g.hold}})
	a, b := c.Nodes[0], c.Nodes[1]
	t.Cleanup(g.open)
	d, _ := spawnCounter(t, a)
	g.origin = d.Origin()
	h, err := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-h.Done():
		t.Fatalf("Wait returned (%v) before the source's Released hook ran", h.Wait(context.Background()))
	}
	select {
	case <-h.Done():
		t.Fatal("Wait returned while the source's Released hook was still running")
	default:
	}
	g.open()
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RT.Daemon(d.Origin()); !errors.Is(err, engine.ErrDaemonNotFound) {
		t.Fatalf("Wait returned while the source still hosts the daemon: %v", err)
	}
}
