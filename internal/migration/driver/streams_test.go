package driver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// streamTiming keeps a held migration alive while the test holds it.
var streamTiming = protocol.Timing{Retransmit: 100 * time.Millisecond, ChunkRetransmit: 500 * time.Millisecond, PeerTimeout: 30 * time.Second}

// chunkOf says whether frame carries a snapshot chunk (of the handover's
// snapshot or of a pre-copy base) of origin.
func chunkOf(frame []byte, origin uint64) bool {
	if len(frame) == 0 || (frame[0] != 1 && frame[0] != 3) {
		return false
	}
	m, err := wire.Decode(frame[1:])
	c, ok := m.(wire.SnapshotChunk)
	return err == nil && ok && c.Origin == origin
}

// frameGate holds the frames it is shown until it is opened; it says when the
// first one is held.
type frameGate struct {
	held    chan struct{}
	open    chan struct{}
	onceH   sync.Once
	onceO   sync.Once
	holding func(frame []byte) bool
}

func newFrameGate(t *testing.T, holding func([]byte) bool) *frameGate {
	g := &frameGate{held: make(chan struct{}), open: make(chan struct{}), holding: holding}
	// Opened before the cluster closes (cleanups run last first), also
	// when the test fails while holding.
	t.Cleanup(g.release)
	return g
}

func (g *frameGate) hold(frame []byte) {
	if !g.holding(frame) {
		return
	}
	g.onceH.Do(func() { close(g.held) })
	<-g.open
}

func (g *frameGate) release() { g.onceO.Do(func() { close(g.open) }) }

// TestStalledMigrationDoesNotHoldBackAnother: while one migration's
// snapshot is stalled, another migration from the same source to the same
// target completes. With one queue and one stream per peer every frame
// behind the stalled chunk waited with it, the other migration's control
// messages too. The stall is either at the source (the first chunk's
// write blocks, as a write does on a stream whose flow-control window the
// receiver does not open) or at the target, which stops reading the
// stream its first chunk came on: the source then writes until QUIC's
// flow control stops that stream, and only that one. Both the handover's
// snapshot and a pre-copy base are held.
func TestStalledMigrationDoesNotHoldBackAnother(t *testing.T) {
	for _, tc := range []struct {
		name     string
		precopy  bool
		receiver bool
	}{
		{"source/snapshot", false, false}, {"source/precopy", true, false},
		{"target/snapshot", false, true}, {"target/precopy", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := drivertest.NewWith(t, 2, driver.Config{Timing: streamTiming})
			a, b := c.Nodes[0], c.Nodes[1]
			size := 2 << 20
			if tc.receiver {
				// More than a stream's flow-control window, so the
				// source's writes of it block.
				size = 12 << 20
			}
			big := dirtyDaemon(t, a, size)
			g := newFrameGate(t, func(frame []byte) bool { return chunkOf(frame, big.Origin()) })
			if tc.receiver {
				b.Mesh().SetReceiveHook(func(_ driver.NodeID, frame []byte) { g.hold(frame) })
			} else {
				c.SetDrop(func(from, _ driver.NodeID, frame []byte) bool {
					if from == a.ID {
						g.hold(frame)
					}
					return false
				})
			}
			small, _ := spawnCounter(t, a)
			for i := 1; i <= 3; i++ {
				if _, err := small.Deliver(context.Background(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}

			opts := driver.DefaultOptions()
			if !tc.precopy {
				opts.PreCopyThreshold = -1
			}
			// A pre-copy runs inside StartMigrationWith, until the base
			// is acknowledged.
			bigDone := make(chan error, 1)
			go func() {
				h, err := a.Mig.StartMigrationWith(context.Background(), big.Origin(), a.ID, b.ID, opts)
				if err == nil {
					err = h.WaitTimeout(time.Minute)
					if err == nil && h.Stats().PreCopied != tc.precopy {
						t.Errorf("pre-copied %v, want %v", h.Stats().PreCopied, tc.precopy)
					}
				}
				bigDone <- err
			}()
			select {
			case <-g.held:
			case err := <-bigDone:
				t.Fatalf("the big migration ended before its chunk was held: %v", err)
			}

			h, err := a.Mig.StartMigration(context.Background(), small.Origin(), a.ID, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.WaitTimeout(20 * time.Second); err != nil {
				t.Fatalf("the small migration did not complete while the big one was stalled: %v", err)
			}
			select {
			case err := <-bigDone:
				t.Fatalf("the big migration ended while its chunk was held: %v", err)
			default:
			}
			if tc.receiver {
				// The stall is the stream's: QUIC's flow control stopped
				// taking the big snapshot, which waits on the source.
				most := 0
				for _, n := range a.Mig.LaneBytes() {
					most = max(most, n)
				}
				if most < 1<<20 {
					t.Fatalf("the source holds at most %d bytes for a migration: the stalled stream took them", most)
				}
			}
			if _, err := b.RT.Daemon(small.Origin()); err != nil {
				t.Fatalf("small daemon not on the target: %v", err)
			}
			if n := get(t, b, small.Origin()); n != 3 {
				t.Fatalf("small daemon counts %d after 3 events", n)
			}

			// The stalled migration goes on once its stream drains.
			g.release()
			if err := <-bigDone; err != nil {
				t.Fatalf("big migration: %v", err)
			}
			if _, err := b.RT.Daemon(big.Origin()); err != nil {
				t.Fatalf("big daemon not on the target: %v", err)
			}
		})
	}
}
