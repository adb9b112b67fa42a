package driver_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// TestAbortKeepsExactlyOnce: two senders send the same exactly-once events
// (one sender id, event ids 1, 2, ...: a client and its retry) while a
// migration buffers them and then aborts (the target never gets
// Activate). The source takes the daemon back with what it kept; each
// event id must still be applied once, so the count never exceeds the
// highest event id sent. (Found by tests/e2e TestFaultsAsymmetricPartition:
// the kept events were re-applied without their exactly-once flag.)
func TestAbortKeepsExactlyOnce(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	origin := d.Origin()
	dropActivateFrom(c, a.ID)
	stop := make(chan struct{})
	var maxSent, maxAcked atomic.Uint64
	raise := func(v *atomic.Uint64, n uint64) {
		for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
		}
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); ; {
				select {
				case <-stop:
					return
				default:
				}
				raise(&maxSent, i)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := send(ctx, a, origin, engine.Event{Sender: 3, Seq: i, Payload: []byte("x"), Once: true})
				cancel()
				if err == nil || errors.Is(err, engine.ErrDuplicateEvent) {
					raise(&maxAcked, i)
					i++
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	h, _ := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
	if err := h.WaitTimeout(30 * time.Second); err == nil {
		t.Fatal("the migration succeeded although Activate never arrived")
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	st := h.Stats()
	if st.EventsBuffered+st.EventsForward == 0 {
		t.Fatal("no event was buffered or forwarded: the test did not exercise the path")
	}
	got := uint64(get(t, a, origin))
	if got > maxSent.Load() || got < maxAcked.Load() {
		t.Fatalf("count %d after event ids up to %d (acknowledged up to %d): an event was applied twice or lost (buffered %d, forwarded %d)",
			got, maxSent.Load(), maxAcked.Load(), st.EventsBuffered, st.EventsForward)
	}
}
