package driver_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// TestZeroOptionsAreSafe: Options{} seals the identity to the target (it
// has none registered, so the move only works sealed) and retries a
// target that answers NotReady at first.
func TestZeroOptionsAreSafe(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	b.RT.SetMigrationNotReady(true)
	h, err := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, driver.Options{
		Retry: protocol.RetryPolicy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Budget: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	for h.Attempt() < 2 {
		select {
		case <-h.Done():
			t.Fatalf("ended on attempt %d: %v", h.Attempt(), h.Wait(context.Background()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.RT.SetMigrationNotReady(false)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	if _, err := b.RT.Daemon(d.Origin()); err != nil {
		t.Fatalf("not on the target: %v", err)
	}
	if got := get(t, b, d.Origin()); got != 0 {
		t.Fatalf("count on the target %d, want 0", got)
	}
}

// refused: the error of a start refused because the daemon is migrating,
// as the migrator's sentinel and as the protocol's failure.
func refused(err error) bool {
	return errors.Is(err, driver.ErrAlreadyMigrating) &&
		errors.Is(err, &protocol.Failure{Reason: wire.ReasonAlreadyMigrating})
}

// TestSecondStartRefusedBeforePreCopy: a second start of a large daemon
// while its first migration runs is refused with ErrAlreadyMigrating, and
// no second base travels: whether the first is still pre-copying or
// already in the protocol (its target answering NotReady).
func TestSecondStartRefusedBeforePreCopy(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d := dirtyDaemon(t, a, 4<<20)
	origin := d.Origin()
	var bases atomic.Int32
	var bytes atomic.Int64
	inBase := make(chan struct{})
	var once sync.Once
	c.SetDrop(func(from, _ driver.NodeID, frame []byte) bool {
		round, index, ok := driver.PreCopyFrame(frame)
		if !ok || from != a.ID || round != 0 {
			return false
		}
		bytes.Add(int64(len(frame)))
		if index == 0 {
			bases.Add(1)
			once.Do(func() { close(inBase) })
		}
		return false
	})
	b.RT.SetMigrationNotReady(true)
	first := make(chan error, 1)
	var h *driver.Handle
	go func() {
		var err error
		h, err = a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
		first <- err
	}()
	// While the first is pre-copying.
	<-inBase
	if _, err := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID); !refused(err) {
		t.Fatalf("second start while pre-copying: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// While the first waits on a NotReady target.
	for h.Attempt() < 2 {
		select {
		case <-h.Done():
			t.Fatalf("first ended on attempt %d: %v", h.Attempt(), h.Wait(context.Background()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	sent := bytes.Load()
	if _, err := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID); !refused(err) {
		t.Fatalf("second start while migrating: %v", err)
	}
	if n, after := bases.Load(), bytes.Load(); n != 1 || after != sent {
		t.Fatalf("%d bases sent (want 1), %d pre-copy bytes after the refusal (want %d)", n, after, sent)
	}
	b.RT.SetMigrationNotReady(false)
	if err := h.WaitTimeout(30 * time.Second); err != nil {
		t.Fatalf("first migration: %v", err)
	}
	if !h.Stats().PreCopied {
		t.Fatalf("first migration did not use its base: %+v", h.Stats())
	}
	if n := a.Mig.MapSizes()["precopyAcks"]; n != 0 {
		t.Fatalf("%d pre-copy waits left", n)
	}
}
