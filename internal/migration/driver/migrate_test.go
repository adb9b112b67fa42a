package driver_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

var fastTiming = protocol.Timing{Retransmit: 200 * time.Millisecond, ChunkRetransmit: 2 * time.Second, PeerTimeout: 1500 * time.Millisecond}

func send(ctx context.Context, via *testNode, origin uint64, ev engine.Event) ([]engine.Output, error) {
	return drivertest.Send(ctx, via, origin, ev)
}

func get(t *testing.T, via *testNode, origin uint64) int {
	t.Helper()
	outs, err := send(context.Background(), via, origin, engine.Event{Sender: 999, Seq: uint64(time.Now().UnixNano()), Payload: []byte("get")})
	if err != nil || len(outs) != 1 {
		t.Fatalf("get: %v %v", outs, err)
	}
	n, _ := strconv.Atoi(string(outs[0].Payload))
	return n
}

// TestMigrateUnderLoad: 20,000 events from four senders through a node that
// never hosts the daemon while it moves A→B. Afterwards the count is exact,
// every output's causal link validates across the move, and the horizon
// came along (SPEC R-M4, R-S1).
func TestMigrateUnderLoad(t *testing.T) {
	c := newCluster(t, 3, fastTiming)
	a, b, via := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	d, _ := spawnCounter(t, a)
	origin := d.Origin()
	via.EP.Routes().Set(origin, a.EP.ID(), 1)

	const senders, perSender = 4, 5000
	var mu sync.Mutex
	var all []engine.Output
	var sent atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 1; i <= perSender; i++ {
				outs, err := send(context.Background(), via, origin, engine.Event{Sender: uint64(100 + s), Seq: uint64(i), Payload: []byte("x")})
				if err != nil {
					errc <- err
					return
				}
				sent.Add(1)
				mu.Lock()
				all = append(all, outs...)
				mu.Unlock()
			}
		}(s)
	}
	for sent.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	h, err := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitTimeout(30 * time.Second); err != nil {
		t.Fatalf("migration: %v", err)
	}
	// Asked now: a finished migration is forgotten after the linger.
	if ph, ok := a.Mig.MigrationPhase(origin); !ok || ph != protocol.PhaseComplete {
		t.Fatalf("phase = %v %v", ph, ok)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("sender: %v", err)
	}
	if _, err := a.RT.Daemon(origin); !errors.Is(err, engine.ErrDaemonNotFound) {
		t.Fatalf("source still hosts the daemon: %v", err)
	}
	moved, err := b.RT.Daemon(origin)
	if err != nil {
		t.Fatalf("target does not host the daemon: %v", err)
	}
	if n := get(t, via, origin); n != senders*perSender {
		t.Fatalf("count after migration = %d, want %d", n, senders*perSender)
	}
	// Every output, ordered by chain sequence, validates from genesis: no
	// gap (lost), no repeat (applied twice), parents intact across the move.
	sort.Slice(all, func(i, j int) bool { return all[i].Link.Sequence < all[j].Link.Sequence })
	if len(all) != senders*perSender {
		t.Fatalf("%d outputs for %d events", len(all), senders*perSender)
	}
	v := chain.NewGenesisValidator(origin)
	for i, o := range all {
		if err := v.Accept(o.Link, o.Payload); err != nil {
			t.Fatalf("output %d: %v", i, err)
		}
		if string(o.Payload) != strconv.Itoa(i+1) {
			for j := max(0, i-5); j < min(len(all), i+10); j++ {
				t.Logf("seq %d payload %s", all[j].Link.Sequence, all[j].Payload)
			}
			t.Fatalf("output %d says %q", i, o.Payload)
		}
	}
	hz := moved.Horizon()
	for s := 0; s < senders; s++ {
		if hz[uint64(100+s)] != perSender {
			t.Fatalf("horizon after the move: sender %d at %d, want %d (%v)", s, hz[uint64(100+s)], perSender, hz)
		}
	}
	st := h.Stats()
	if st.SnapshotBytes == 0 || st.ChunkBytesSent < st.WireBytes || st.Pause <= 0 || st.Pause > h.Duration() {
		t.Fatalf("stats = %+v (duration %v)", st, h.Duration())
	}
	t.Logf("migration under load: total %v, pause %v, %d snapshot bytes, %d events buffered, %d forwarded",
		h.Duration(), st.Pause, st.SnapshotBytes, st.EventsBuffered, st.EventsForward)
}

// TestKillTargetThenRetryElsewhere: the target dies mid-migration; the
// source keeps and serves the daemon, and a retry to another node works.
func TestKillTargetThenRetryElsewhere(t *testing.T) {
	c := newCluster(t, 3, fastTiming)
	a, b, c3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	d, _ := spawnCounter(t, a)
	for i := 0; i < 5; i++ {
		d.Deliver(context.Background(), engine.Event{Sender: 1, Seq: uint64(i), Payload: []byte("x")})
	}
	b.Mig.Close()
	b.EP.Close()
	h, err := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = h.WaitTimeout(20 * time.Second)
	if err == nil {
		t.Fatal("migration to a dead target succeeded")
	}
	if f := protocol.AsFailure(err); f == nil {
		t.Fatalf("failure is not typed: %v", err)
	}
	if got := get(t, a, d.Origin()); got != 5 {
		t.Fatalf("source count after failed migration = %d, want 5", got)
	}
	h2, err := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, c3.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("retry to another node: %v", err)
	}
	if got := get(t, c3, d.Origin()); got != 5 {
		t.Fatalf("count on the new node = %d, want 5", got)
	}
}

func TestNotReadyRetryAndBudget(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]

	// Retry succeeds once the target becomes ready.
	d, _ := spawnCounter(t, a)
	b.RT.SetMigrationNotReady(true)
	h, err := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, driver.Options{
		Retry: protocol.RetryPolicy{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Budget: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	b.RT.SetMigrationNotReady(false)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if h.Attempt() < 2 {
		t.Fatalf("succeeded on attempt %d; the target was not ready at first", h.Attempt())
	}

	// Budget exhausted: NotReadyTimeout with the attempt count.
	d2, _ := spawnCounter(t, a)
	b.RT.SetMigrationNotReady(true)
	h, _ = a.Mig.StartMigrationWith(context.Background(), d2.Origin(), a.ID, b.ID, driver.Options{
		Retry: protocol.RetryPolicy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Budget: 600 * time.Millisecond},
	})
	err = h.WaitTimeout(20 * time.Second)
	f := protocol.AsFailure(err)
	if f == nil || f.Reason != wire.ReasonNotReadyTimeout || f.Attempts < 2 {
		t.Fatalf("budget exhausted: %v", err)
	}

	// Retry disabled surfaces NotReady; a new attempt later is not
	// affected by that stale failure.
	h, _ = a.Mig.StartMigrationWith(context.Background(), d2.Origin(), a.ID, b.ID, driver.Options{NoRetryNotReady: true})
	err = h.WaitTimeout(20 * time.Second)
	if f := protocol.AsFailure(err); f == nil || f.Reason != wire.ReasonNotReady || !f.Retriable() {
		t.Fatalf("retry disabled: %v", err)
	}
	if f := protocol.AsFailure(a.RT.PeekMigrationFailure(d2.Origin())); f == nil || f.Reason != wire.ReasonNotReady {
		t.Fatalf("runtime's cached failure: %v", a.RT.PeekMigrationFailure(d2.Origin()))
	}
	b.RT.SetMigrationNotReady(false)
	h, _ = a.Mig.StartMigration(context.Background(), d2.Origin(), a.ID, b.ID)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("fresh attempt after a failed one: %v", err)
	}
	if err := a.RT.PeekMigrationFailure(d2.Origin()); err != nil {
		t.Fatalf("a stale failure survived a successful attempt: %v", err)
	}
}

func TestNoIdentityTransport(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d, id := spawnCounter(t, a)
	opts := driver.Options{SkipIdentityTransport: true}
	h, _ := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, opts)
	err := h.WaitTimeout(20 * time.Second)
	if f := protocol.AsFailure(err); f == nil || f.Reason != wire.ReasonIdentityTransportFailed {
		t.Fatalf("without a registered identity: %v", err)
	}
	if got := get(t, a, d.Origin()); got != 0 {
		t.Fatalf("source lost the daemon: %d", got)
	}
	b.Mig.RegisterMigrationTargetIdentity(string(d.Kind().Digest), id)
	h, _ = a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, opts)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("with a registered identity: %v", err)
	}
	if _, err := b.RT.Daemon(d.Origin()); err != nil {
		t.Fatal(err)
	}
}

func TestCancelAndWaitTimeout(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	b.RT.SetMigrationNotReady(true)
	retry := driver.Options{Retry: protocol.RetryPolicy{Initial: 100 * time.Millisecond, Budget: time.Minute}}
	h, _ := a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, retry)
	time.Sleep(200 * time.Millisecond)
	if err := h.Cancel(); err != nil {
		t.Fatal(err)
	}
	err := h.WaitTimeout(10 * time.Second)
	if f := protocol.AsFailure(err); f == nil || f.Reason != wire.ReasonCancelled {
		t.Fatalf("cancel: %v", err)
	}
	h, _ = a.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, b.ID, retry)
	if err := h.WaitTimeout(300 * time.Millisecond); !errors.Is(err, driver.ErrWaitTimeout) {
		t.Fatalf("wait timeout: %v", err)
	}
	<-h.Done()
	if got := get(t, a, d.Origin()); got != 0 {
		t.Fatalf("source does not serve after cancel: %d", got)
	}
}

// TestStatelessDaemonMigrates: an echo daemon with nothing in memory (R-M11).
func TestStatelessDaemonMigrates(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	k, err := a.RT.RegisterModule(context.Background(), fixtureBytes(t, "echo-wat", "echo-wat.wasm"), "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.RT.Spawn(context.Background(), string(k.Digest), newIdentity(t), engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	outs, err := send(context.Background(), a, d.Origin(), engine.Event{Payload: []byte("hi")})
	if err != nil || len(outs) != 1 || string(outs[0].Payload) != "hi" {
		t.Fatalf("echo through the old node after the move: %v %v", outs, err)
	}
}

func frameOf(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{1}, b...)
}

// TestOutsiderMessagesRefused: a member that is not part of a migration
// cannot start one in another node's name, nor push a target live, nor ask
// for a daemon's key (SPEC R-M10).
func TestOutsiderMessagesRefused(t *testing.T) {
	c := newCluster(t, 3, fastTiming)
	a, b, mallory := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	d, _ := spawnCounter(t, a)
	plan := wire.Plan{Origin: d.Origin(), KindDigest: string(d.Kind().Digest), Source: a.ID, Target: mallory.ID, Orchestrator: b.ID, TransportIdentity: true}
	// A Start that names b as orchestrator but comes from mallory.
	if err := a.Mig.Receive(mallory.ID, frameOf(t, wire.Start{Header: wire.Header{ID: 77, Attempt: 1}, Plan: plan})); err != nil {
		t.Fatal(err)
	}
	// An Activate for a migration mallory is not in.
	if err := b.Mig.Receive(mallory.ID, frameOf(t, wire.Activate{Header: wire.Header{ID: 78, Attempt: 1}, FinalSeq: 1})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// Nothing moved, nothing froze: the daemon still answers on a at once.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	outs, err := d.Deliver(ctx, engine.Event{Payload: []byte("x")})
	if err != nil || len(outs) != 1 || string(outs[0].Payload) != "1" {
		t.Fatalf("daemon after forged messages: %v %v", outs, err)
	}
	if _, err := mallory.RT.Daemon(d.Origin()); err == nil {
		t.Fatal("the outsider got the daemon")
	}
	// Garbage frames are refused with a typed error, not a panic.
	if err := a.Mig.Receive(mallory.ID, []byte{1, 0xff, 0x00}); err == nil {
		t.Fatal("garbage frame accepted")
	}
	if err := a.Mig.Receive(mallory.ID, []byte{9}); !errors.Is(err, driver.ErrBadFrame) {
		t.Fatalf("unknown frame type: %v", err)
	}
}

// TestPreCopyMigration: a daemon with 8 MiB of live state is pre-copied,
// so only the pages that changed after the base travel at the freeze; the
// events sent meanwhile are all applied exactly once.
func TestPreCopyMigration(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	k, err := a.RT.RegisterModule(context.Background(), fixtureBytes(t, "testdata", "ballast.wasm"), "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.RT.Spawn(context.Background(), string(k.Digest), newIdentity(t), engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	origin := d.Origin()
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], 8<<20)
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: n[:]}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var all []engine.Output
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			outs, err := send(context.Background(), a, origin, engine.Event{Sender: 5, Seq: i, Payload: []byte("x")})
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			all = append(all, outs...)
			mu.Unlock()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	h, err := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitTimeout(30 * time.Second); err != nil {
		t.Fatalf("migration: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	st := h.Stats()
	if !st.PreCopied || st.SnapshotBytes > 1<<20 {
		t.Fatalf("pre-copy: %+v", st)
	}
	moved, err := b.RT.Daemon(origin)
	if err != nil {
		t.Fatal(err)
	}
	if ms := moved.Stats().MemoryBytes; ms < 8<<20 {
		t.Fatalf("target memory %d bytes, the daemon held 8 MiB", ms)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Link.Sequence < all[j].Link.Sequence })
	v := chain.NewGenesisValidator(origin)
	for i, o := range all {
		if err := v.Accept(o.Link, o.Payload); err != nil {
			t.Fatalf("output %d: %v", i, err)
		}
		if string(o.Payload) != strconv.Itoa(i+1) {
			t.Fatalf("output %d says %q", i, o.Payload)
		}
	}
	// ballast counts every non-4-byte payload, "get" included.
	if got := get(t, b, origin); got != len(all)+1 {
		t.Fatalf("count on the target %d after %d outputs", got, len(all))
	}
	t.Logf("pre-copy migration of 8 MiB under load: total %v, pause %v, delta %d bytes, %d events during the move",
		h.Duration(), st.Pause, st.SnapshotBytes, len(all))
}

// TestRequireExpected: a strict target refuses a daemon nobody announced,
// and takes it once ExpectMigration names it (SPEC R-M6).
func TestRequireExpected(t *testing.T) {
	c := drivertest.NewWith(t, 2, driver.Config{Timing: fastTiming, RequireExpected: true})
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	h, _ := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	err := h.WaitTimeout(20 * time.Second)
	if f := protocol.AsFailure(err); f == nil || f.Reason != wire.ReasonFactoryNotFound {
		t.Fatalf("unexpected daemon: %v", err)
	}
	if got := get(t, a, d.Origin()); got != 0 {
		t.Fatalf("source lost the daemon: %d", got)
	}
	b.Mig.ExpectMigration(string(d.Kind().Digest), d.Origin())
	h, _ = a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("expected daemon: %v", err)
	}
}

// TestLostOutputsDoNotHangSenders: when the outputs of replayed events never
// come back from the target, their senders get ErrOutputsLost after the
// grace instead of waiting forever; the events were applied exactly once.
func TestLostOutputsDoNotHangSenders(t *testing.T) {
	c := drivertest.NewWith(t, 2, driver.Config{Timing: fastTiming, OutputsGrace: 300 * time.Millisecond})
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	origin := d.Origin()
	var delayed atomic.Bool
	c.SetDrop(func(from, to driver.NodeID, frame []byte) bool {
		if from != b.ID || len(frame) == 0 {
			return false
		}
		if frame[0] == 2 { // outputs reports: lost
			return true
		}
		// Hold the target's RestoreComplete back so that events pile up
		// in the source's buffer meanwhile.
		if m, err := wire.Decode(frame[1:]); err == nil && m.Kind() == wire.KindRestoreComplete && !delayed.Swap(true) {
			time.Sleep(300 * time.Millisecond)
		}
		return false
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, lost atomic.Int32
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 1; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := send(ctx, a, origin, engine.Event{Sender: uint64(10 + i), Seq: uint64(j), Payload: []byte("x")})
				cancel()
				sent.Add(1)
				switch {
				case err == nil:
				case errors.Is(err, driver.ErrOutputsLost):
					lost.Add(1)
				default:
					t.Errorf("send: %v", err)
					return
				}
			}
		}(i)
	}
	time.Sleep(20 * time.Millisecond)
	h, _ := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
	if err := h.WaitTimeout(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	c.SetDrop(nil)
	if lost.Load() == 0 || h.Stats().EventsBuffered == 0 {
		t.Fatalf("no sender saw lost outputs (buffered %d): the test did not exercise the path", h.Stats().EventsBuffered)
	}
	if got := get(t, b, origin); got != int(sent.Load()) {
		t.Fatalf("count %d after %d events (%d with lost outputs)", got, sent.Load(), lost.Load())
	}
}

// TestAbortAfterFlipPairsOutputsWithSenders: the target never receives
// Activate, so it gives up after the flip and the source takes the daemon
// back with every event it kept. Each sender must get the outputs of its
// own event: the counts a single sequential sender sees stay consecutive.
func TestAbortAfterFlipPairsOutputsWithSenders(t *testing.T) {
	c := newCluster(t, 2, fastTiming)
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	origin := d.Origin()
	dropActivateFrom(c, a.ID)
	stop := make(chan struct{})
	done := make(chan error, 1)
	var counts []int
	go func() {
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			outs, err := send(ctx, a, origin, engine.Event{Sender: 3, Seq: i, Payload: []byte("x")})
			cancel()
			if err != nil {
				done <- err
				return
			}
			n, _ := strconv.Atoi(string(outs[0].Payload))
			counts = append(counts, n)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	h, _ := a.Mig.StartMigration(context.Background(), origin, a.ID, b.ID)
	if err := h.WaitTimeout(30 * time.Second); err == nil {
		t.Fatal("the migration succeeded although Activate never arrived")
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("send %d got count %d: outputs went to the wrong sender (%v...)", i+1, n, counts[max(0, i-3):min(len(counts), i+3)])
		}
	}
	if got := get(t, a, origin); got != len(counts) {
		t.Fatalf("source count %d after %d events", got, len(counts))
	}
	if _, err := b.RT.Daemon(origin); err == nil {
		t.Fatal("the target kept a copy")
	}
}

// TestAbortDuringRestoreLeavesNoCopy: the migration is cancelled while the
// target is still registering the restored daemon; the target must not keep
// a copy (it would hold the daemon's key and answer as the daemon).
func TestAbortDuringRestoreLeavesNoCopy(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	c := drivertest.NewOpts(t, 2, drivertest.Options{
		Migrator: driver.Config{Timing: fastTiming},
		Hooks: func(i int) *engine.TestHooks {
			if i != 1 {
				return nil
			}
			return &engine.TestHooks{SpawnStall: func() {
				once.Do(func() { close(entered); <-release })
			}}
		},
	})
	a, b := c.Nodes[0], c.Nodes[1]
	d, _ := spawnCounter(t, a)
	h, err := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := h.Cancel(); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if err := h.WaitTimeout(10 * time.Second); protocol.AsFailure(err) == nil {
		t.Fatalf("cancelled migration: %v", err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.RT.Daemon(d.Origin()); errors.Is(err, engine.ErrDaemonNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the target kept the restored daemon after the migration was aborted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It stays gone, and the source still serves.
	time.Sleep(200 * time.Millisecond)
	if _, err := b.RT.Daemon(d.Origin()); err == nil {
		t.Fatal("the restored copy reappeared on the target")
	}
	if got := get(t, a, d.Origin()); got != 0 {
		t.Fatalf("source count %d", got)
	}
}

// TestSecondOrchestratorRefused: while a daemon migrates, a Start for it
// from another orchestrator is answered AlreadyMigrating and the first
// migration completes; the daemon never runs twice.
func TestSecondOrchestratorRefused(t *testing.T) {
	c := newCluster(t, 3, fastTiming)
	a, b, o := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	d, _ := spawnCounter(t, a)
	// Hold the first migration in its snapshot/transfer phase.
	var held atomic.Bool
	c.SetDrop(func(from, to driver.NodeID, frame []byte) bool {
		if from == b.ID && len(frame) > 0 && frame[0] == 1 {
			if m, err := wire.Decode(frame[1:]); err == nil && m.Kind() == wire.KindRestoreComplete && !held.Swap(true) {
				time.Sleep(400 * time.Millisecond)
			}
		}
		return false
	})
	h1, err := a.Mig.StartMigration(context.Background(), d.Origin(), a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	h2, err := o.Mig.StartMigrationWith(context.Background(), d.Origin(), a.ID, o.ID, driver.Options{
		KindDigest: string(d.Kind().Digest),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = h2.WaitTimeout(20 * time.Second)
	if f := protocol.AsFailure(err); f == nil || f.Reason != wire.ReasonAlreadyMigrating {
		t.Fatalf("second orchestrator: %v", err)
	}
	if err := h1.WaitTimeout(20 * time.Second); err != nil {
		t.Fatalf("first migration: %v", err)
	}
	if _, err := o.RT.Daemon(d.Origin()); err == nil {
		t.Fatal("the second target got a copy")
	}
	if _, err := b.RT.Daemon(d.Origin()); err != nil {
		t.Fatalf("the first target lacks the daemon: %v", err)
	}
}

// dropActivateFrom makes the cluster lose every Activate that node sends:
// its target never goes live and gives up after the flip.
func dropActivateFrom(c *drivertest.Cluster, node driver.NodeID) {
	c.SetDrop(func(from, to driver.NodeID, frame []byte) bool {
		if from != node || len(frame) == 0 || frame[0] != 1 {
			return false
		}
		m, err := wire.Decode(frame[1:])
		return err == nil && m.Kind() == wire.KindActivate
	})
}
