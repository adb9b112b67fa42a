package driver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// TestSlowLinkChunksNotQueuedTwice: while a snapshot's chunks wait behind
// a slow link, the source machine's resends of the snapshot do not queue
// more copies behind them (each would lengthen the transfer the resend
// waits for: on a 100 Mbit/s link a 64 MiB snapshot was queued six times
// and the pause grew from 5 s to a minute). The link is one blocked send
// here: the frame hook holds the first chunk for several resend periods.
func TestSlowLinkChunksNotQueuedTwice(t *testing.T) {
	c := drivertest.NewWith(t, 2, driver.Config{
		Timing: protocol.Timing{Retransmit: 100 * time.Millisecond, ChunkRetransmit: 200 * time.Millisecond, PeerTimeout: 20 * time.Second},
		Limits: protocol.Limits{ChunkSize: 16 << 10},
	})
	a, b := c.Nodes[0], c.Nodes[1]
	d := dirtyDaemon(t, a, 256<<10)
	var mu sync.Mutex
	sent := map[uint32]int{}
	var count uint32
	held := false
	c.SetDrop(func(from, _ driver.NodeID, frame []byte) bool {
		if from != a.ID || len(frame) == 0 || frame[0] != 1 {
			return false
		}
		m, err := wire.Decode(frame[1:])
		ch, ok := m.(wire.SnapshotChunk)
		if err != nil || !ok {
			return false
		}
		mu.Lock()
		sent[ch.Index]++
		count = ch.Count
		hold := !held
		held = true
		mu.Unlock()
		if hold {
			time.Sleep(1500 * time.Millisecond) // about seven resend periods
		}
		return false
	})
	opts := driver.DefaultOptions()
	opts.PreCopyThreshold = -1
	h, err := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitTimeout(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.SetDrop(nil)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sent {
		total += n
	}
	if count < 8 || len(sent) != int(count) {
		t.Fatalf("%d chunk indexes sent of %d", len(sent), count)
	}
	// One copy of each chunk, the held one resent once it was written,
	// and perhaps one more resend after the queue drained.
	if total > 2*int(count)+2 {
		t.Fatalf("%d chunk frames sent for a snapshot of %d chunks: %v", total, count, sent)
	}
	t.Logf("%d chunk frames for %d chunks", total, count)
}
