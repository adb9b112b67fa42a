package driver

import (
	"context"
	"errors"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// TestFrameLane: every kind of frame the migrator sends names its
// migration, so it travels on that migration's lane and stream; a frame
// it cannot read goes on the shared lane 0.
func TestFrameLane(t *testing.T) {
	const id = 0xfedcba9876543211
	msg, err := encodeMessage(wire.Cutover{Header: wire.Header{ID: id, Attempt: 3}})
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := wire.Encode(wire.SnapshotChunk{Header: wire.Header{ID: id, Attempt: 1}, Origin: 9, SnapshotSeq: 4, Index: 0, Count: 1, TotalBytes: 1, Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string][]byte{
		"message":  msg,
		"precopy":  append([]byte{framePrecopy}, chunk...),
		"round":    append([]byte{framePrecopyRound}, chunk...),
		"ack ok":   encodePrecopyAck(protocol.PrecopyAck{ID: id}),
		"ack fail": encodePrecopyAck(protocol.PrecopyAck{ID: id, Err: "no"}),
		"outputs":  encodeReport(report{ID: id, Seq: 7}),
	} {
		if got := frameLane(f); got != id {
			t.Errorf("%s: lane %#x, want %#x", name, got, uint64(id))
		}
	}
	for name, f := range map[string][]byte{
		"empty":        nil,
		"unknown type": {99, 1, 2, 3},
		"short ack":    {framePrecopyAck, 1, 2},
		"not msgpack":  {frameMessage, 0xc1},
		"short array":  {frameMessage, 0x92, 1, 2},
	} {
		if got := frameLane(f); got != 0 {
			t.Errorf("%s: lane %#x, want 0", name, got)
		}
	}
}

// laneMesh is a Mesh whose sends to one migration block until released;
// it records every frame sent and every stream closed.
type laneMesh struct {
	Mesh
	blocked uint64
	release chan struct{}
	mu      sync.Mutex
	sent    map[uint64]int
	closed  chan uint64
}

func (l *laneMesh) Send(ctx context.Context, _ NodeID, frame []byte) error {
	id := frameLane(frame)
	if id == l.blocked {
		select {
		case <-l.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	l.sent[id]++
	l.mu.Unlock()
	return nil
}

func (l *laneMesh) CloseStream(_ NodeID, id uint64) { l.closed <- id }

// TestLaneBudget: a producer that can wait is held to its lane's byte
// budget while that lane's stream is blocked, and a producer of another
// migration to the same peer is not; once the stream moves every frame
// goes out, and a lane whose migration is done closes its stream.
func TestLaneBudget(t *testing.T) {
	const stuck, free = 3, 5
	lm := &laneMesh{blocked: stuck, release: make(chan struct{}), sent: map[uint64]int{}, closed: make(chan uint64, 4)}
	m := &Migrator{cfg: Config{Mesh: lm, Logger: slog.New(slog.DiscardHandler)}}
	p := newPeerQueue(m, "peer")
	p.linger = time.Millisecond
	defer p.close()
	frame := func(id uint64) []byte { return encodeReport(report{ID: id, Err: strings.Repeat("x", 1<<20)}) }

	n := 0
	for ; n < laneBudget>>20+1; n++ {
		if err := p.pushWait(context.Background(), frame(stuck)); err != nil {
			t.Fatal(err)
		}
	}
	// Under its budget a push never waits; over it, a push whose context
	// is done gives up at once.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.pushWait(done, frame(stuck)); !errors.Is(err, context.Canceled) {
		t.Fatalf("push over the budget of a blocked lane: %v, want context.Canceled", err)
	}
	if err := p.pushWait(done, frame(free)); err != nil {
		t.Fatalf("push to another migration's lane: %v", err)
	}

	close(lm.release)
	if err := p.pushWait(context.Background(), frame(stuck)); err != nil {
		t.Fatal(err)
	}
	n++
	m.peers = map[NodeID]*peerQueue{"peer": p}
	m.endLanes(stuck)
	m.endLanes(free)
	got := map[uint64]bool{}
	for len(got) < 2 {
		select {
		case id := <-lm.closed:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("streams closed: %v, want %d and %d", got, stuck, free)
		}
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.sent[stuck] != n || lm.sent[free] != 1 {
		t.Fatalf("sent %v, want %d of %d and 1 of %d", lm.sent, n, stuck, free)
	}
}

// TestForwardsPerDaemon: a forwarded delivery that waits (for its target
// to go live) holds back the later deliveries to the same daemon, which
// keep their order, and no other daemon's.
func TestForwardsPerDaemon(t *testing.T) {
	m := &Migrator{cfg: Config{Logger: slog.New(slog.DiscardHandler)}, peers: map[NodeID]*peerQueue{}}
	p := m.forwarder("peer")
	defer p.close()
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	other, last := make(chan struct{}), make(chan struct{})
	p.forwardOn(1, func() { <-release; note("1a") })
	p.forwardOn(1, func() { note("1b"); close(last) })
	p.forwardOn(2, func() { note("2"); close(other) })
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon 2's delivery waited behind daemon 1's")
	}
	close(release)
	select {
	case <-last:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon 1's deliveries did not run once released")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, []string{"2", "1a", "1b"}) {
		t.Fatalf("order %v, want [2 1a 1b]", order)
	}
}
