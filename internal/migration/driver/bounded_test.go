package driver_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

// spawnBallast starts a ballast daemon holding size bytes of live state.
func spawnBallast(t testing.TB, n *testNode, size int) *engine.Daemon {
	t.Helper()
	return spawnSized(t, n, "ballast.wasm", size)
}

// spawnSized starts a daemon of a testdata fixture whose first event (a
// little-endian u32) makes it hold that many bytes of live state.
func spawnSized(t testing.TB, n *testNode, fixture string, size int) *engine.Daemon {
	t.Helper()
	k, err := n.RT.RegisterModule(context.Background(), fixtureBytes(t, "testdata", fixture), "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.RT.Spawn(context.Background(), string(k.Digest), newIdentity(t), engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(size))
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: b[:]}); err != nil {
		t.Fatal(err)
	}
	return d
}

func heapAfterGC() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// waitForgotten waits until every node's migrator holds nothing for
// finished migrations, and fails naming what is left.
func waitForgotten(t *testing.T, c *drivertest.Cluster) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := map[string]int{}
		for i, n := range c.Nodes {
			for k, v := range n.Mig.MapSizes() {
				if v != 0 {
					left[k+"@"+string(rune('0'+i))] = v
				}
			}
			if r := n.Mig.Resources(); r.InboundBytes != 0 || r.Bases != 0 {
				left["inboundBytes/bases@"+string(rune('0'+i))] = int(r.InboundBytes) + r.Bases
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("finished migrations still held after the linger: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFinishedMigrationsForgotten: after many pre-copied migrations of
// several daemons, once the linger has passed, the migrators hold no
// state for them (no run, no handle, no staged or base snapshot, no
// inbound reservation), and once the daemons are stopped the heap is back
// near its baseline (within two daemons' worth of state), where each
// remembered handle used to keep a whole base snapshot alive.
func TestFinishedMigrationsForgotten(t *testing.T) {
	const daemons, size, rounds = 4, 8 << 20, 3
	c := drivertest.NewWith(t, 2, driver.Config{Timing: fastTiming, Linger: 200 * time.Millisecond})
	a, b := c.Nodes[0], c.Nodes[1]
	var ds []*engine.Daemon
	move := func(from, to *testNode) {
		var wg sync.WaitGroup
		errs := make(chan error, daemons)
		for _, d := range ds {
			wg.Add(1)
			go func(origin uint64) {
				defer wg.Done()
				h, err := from.Mig.StartMigration(context.Background(), origin, from.ID, to.ID)
				if err == nil {
					err = h.WaitTimeout(time.Minute)
					if err == nil && !h.Stats().PreCopied {
						t.Errorf("migration of %016x was not pre-copied", origin)
					}
				}
				errs <- err
			}(d.Origin())
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// A round trip of other daemons first, stopped after it: what the
	// first migrations of this size set up once (the module on b,
	// compression windows, transport buffers) is part of the baseline.
	for i := 0; i < daemons; i++ {
		ds = append(ds, spawnBallast(t, a, size))
	}
	move(a, b)
	move(b, a)
	stop := func() {
		for _, d := range ds {
			if err := a.RT.Stop(context.Background(), d.Origin()); err != nil {
				t.Fatal(err)
			}
		}
		ds = nil
	}
	stop()
	waitForgotten(t, c)
	base := heapAfterGC()
	for i := 0; i < daemons; i++ {
		ds = append(ds, spawnBallast(t, a, size))
	}
	for i := 0; i < rounds; i++ {
		move(a, b)
		move(b, a)
	}
	// With the daemons gone, what is left above the baseline is what the
	// migrators kept.
	stop()
	waitForgotten(t, c)
	after := heapAfterGC()
	t.Logf("heap after GC: baseline %d MiB, after %d more migrations %d MiB", base>>20, 2*rounds*daemons, after>>20)
	if after > base+2*size {
		t.Fatalf("heap grew from %d to %d bytes over %d migrations of %d-byte daemons", base, after, 2*rounds*daemons, size)
	}
}

// stall holds the next restore on a node until released.
type stall struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (s *stall) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed, s.entered, s.release = true, make(chan struct{}), make(chan struct{})
}

func (s *stall) hook() {
	s.mu.Lock()
	if !s.armed {
		s.mu.Unlock()
		return
	}
	s.armed = false
	entered, release := s.entered, s.release
	s.mu.Unlock()
	close(entered)
	<-release
}

func waitInboundZero(t *testing.T, n *testNode, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Mig.Resources().InboundBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: inbound budget still holds %d bytes", what, n.Mig.Resources().InboundBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInboundBudget: the target's inbound budget fits one migration, not
// two. While the first is restoring, the second is answered NotReady and
// retried by its orchestrator; once the first is live the second goes
// through. The budget is back to zero after each end: success, an abort,
// and the source node dying mid-migration.
func TestInboundBudget(t *testing.T) {
	var st stall
	c := drivertest.NewOpts(t, 3, drivertest.Options{
		Migrator: driver.Config{Timing: fastTiming, Linger: 200 * time.Millisecond},
		Hooks: func(i int) *engine.TestHooks {
			if i != 2 {
				return nil
			}
			return &engine.TestHooks{SpawnStall: st.hook}
		},
	})
	a, b, tgt := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	migrate := func(from *testNode, origin uint64) *driver.Handle {
		t.Helper()
		h, err := from.Mig.StartMigration(context.Background(), origin, from.ID, tgt.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// Size the budget from a counter's snapshot as it travels.
	d0, _ := spawnCounter(t, a)
	h0 := migrate(a, d0.Origin())
	if err := h0.WaitTimeout(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	w := uint64(h0.Stats().WireBytes)
	tgt.Mig.SetInboundBudget(w * 3 / 2)
	waitInboundZero(t, tgt, "after a migration")

	d1, _ := spawnCounter(t, a)
	d2, _ := spawnCounter(t, b)
	st.arm()
	h1 := migrate(a, d1.Origin())
	<-st.entered
	if got := tgt.Mig.Resources().InboundBytes; got == 0 {
		t.Fatal("a restoring migration holds nothing of the inbound budget")
	}
	h2 := migrate(b, d2.Origin())
	deadline := time.Now().Add(10 * time.Second)
	for h2.Attempt() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("second migration not deferred: attempt %d, phase %v", h2.Attempt(), h2.Phase())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-h2.Done():
		t.Fatalf("second migration ended while the first holds the budget: %v", h2.Wait(context.Background()))
	default:
	}
	close(st.release)
	if err := h1.WaitTimeout(30 * time.Second); err != nil {
		t.Fatalf("first migration: %v", err)
	}
	if err := h2.WaitTimeout(30 * time.Second); err != nil {
		t.Fatalf("second migration after the first finished: %v", err)
	}
	for _, d := range []*engine.Daemon{d1, d2} {
		if _, err := tgt.RT.Daemon(d.Origin()); err != nil {
			t.Fatalf("daemon %s not on the target: %v", d.ID(), err)
		}
	}
	waitInboundZero(t, tgt, "after both migrations")

	// An abort while restoring releases the reservation.
	d3, _ := spawnCounter(t, a)
	st.arm()
	h3 := migrate(a, d3.Origin())
	<-st.entered
	if err := h3.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := h3.WaitTimeout(10 * time.Second); err == nil {
		t.Fatal("cancelled migration succeeded")
	}
	waitInboundZero(t, tgt, "after an abort")
	close(st.release)

	// So does the source dying mid-migration (the target times out).
	d4, _ := spawnCounter(t, b)
	st.arm()
	migrate(b, d4.Origin())
	<-st.entered
	b.Close()
	waitInboundZero(t, tgt, "after the source died")
	close(st.release)
}

// TestRetryOutlivesLinger: a NotReady answer ends the target's first
// attempt, and the retry reuses the same run there. That run must not be
// forgotten a linger after the first attempt ended while the retry is
// still restoring.
func TestRetryOutlivesLinger(t *testing.T) {
	var st stall
	c := drivertest.NewOpts(t, 2, drivertest.Options{
		Migrator: driver.Config{Timing: fastTiming, Linger: 300 * time.Millisecond},
		Hooks: func(i int) *engine.TestHooks {
			if i != 1 {
				return nil
			}
			return &engine.TestHooks{SpawnStall: st.hook}
		},
	})
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	b.RT.SetMigrationNotReady(true)
	h, err := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, driver.Options{
		Retry: protocol.RetryPolicy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Budget: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	for h.Attempt() < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	st.arm()
	b.RT.SetMigrationNotReady(false)
	<-st.entered
	// Hold the restore past the linger counted from the first attempt's end.
	time.Sleep(time.Second)
	close(st.release)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("retried migration: %v", err)
	}
	if _, err := b.RT.Daemon(d.Origin()); err != nil {
		t.Fatalf("not on the target: %v", err)
	}
}
