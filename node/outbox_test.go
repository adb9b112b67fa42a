package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wasmesh/wasmesh/internal/engine"
)

func pingPongModule(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "pingpong-wat", "pingpong-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pingPongPair deploys the pingpong example on a and b and spawns x on a
// and y on b.
func pingPongPair(t testing.TB, a, b *Node) (x, y DaemonInfo) {
	t.Helper()
	ctx := context.Background()
	mod := pingPongModule(t)
	for _, n := range []*Node{a, b} {
		if _, err := n.Deploy(ctx, mod, "pingpong"); err != nil {
			t.Fatal(err)
		}
	}
	x, err := a.Spawn(ctx, SpawnRequest{Kind: "pingpong", Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	y, err = b.Spawn(ctx, SpawnRequest{Kind: "pingpong", Name: "y"})
	if err != nil {
		t.Fatal(err)
	}
	return x, y
}

// pingStats is what the pingpong example's "get" reports.
type pingStats struct{ received, sent, last, bad uint64 }

func getStats(t testing.TB, n *Node, ref string) pingStats {
	t.Helper()
	res, err := n.Send(context.Background(), ref, []byte("get"))
	if err != nil {
		t.Fatalf("get %s via %s: %v", ref, n.Name(), err)
	}
	if len(res.Outputs) != 4 {
		t.Fatalf("get %s: outputs %q", ref, res.Outputs)
	}
	var v [4]uint64
	for i, o := range res.Outputs {
		if v[i], err = strconv.ParseUint(string(o), 10, 64); err != nil {
			t.Fatalf("get %s: output %q", ref, o)
		}
	}
	return pingStats{v[0], v[1], v[2], v[3]}
}

// waitReceived polls until the two sides received at least want messages
// in total. The deadline only bounds a hung test; nothing is timed.
func waitReceived(t testing.TB, n *Node, x, y string, want uint64) (pingStats, pingStats) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sx, sy := getStats(t, n, x), getStats(t, n, y)
		if sx.received+sy.received >= want {
			return sx, sy
		}
		if time.Now().After(deadline) {
			t.Fatalf("stuck at %d of %d messages: %+v %+v", sx.received+sy.received, want, sx, sy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPingPongAcrossMigrations: two daemons on two nodes bounce a counter
// with the send import while first one and then the other migrates; every
// message arrives exactly once and in order, and the outboxes drain.
func TestPingPongAcrossMigrations(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	x, y := pingPongPair(t, a, b)
	const n = pingPongMessages
	if _, err := a.Send(ctx, "x", []byte(fmt.Sprintf("start %s %d", y.ID, n))); err != nil {
		t.Fatal(err)
	}

	waitReceived(t, a, "x", "y", n/4)
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "y", To: "a"}, nil); err != nil {
		t.Fatalf("migrate y to a: %v", err)
	}
	waitReceived(t, a, "x", "y", n/2)
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "x", To: "b"}, nil); err != nil {
		t.Fatalf("migrate x to b: %v", err)
	}
	sx, sy := waitReceived(t, a, "x", "y", n)
	if _, err := b.rt.Daemon(originOf(t, x.ID)); err != nil {
		t.Fatalf("x is not on b after its migration: %v", err)
	}
	if _, err := a.rt.Daemon(originOf(t, y.ID)); err != nil {
		t.Fatalf("y is not on a after its migration: %v", err)
	}

	if sx.received+sy.received != n || sx.sent+sy.sent != n {
		t.Fatalf("received %d+%d, sent %d+%d; want %d each way in total", sx.received, sy.received, sx.sent, sy.sent, n)
	}
	if sx.sent != sy.received || sy.sent != sx.received {
		t.Fatalf("x sent %d, y received %d; y sent %d, x received %d", sx.sent, sy.received, sy.sent, sx.received)
	}
	if sx.bad != 0 || sy.bad != 0 {
		t.Fatalf("messages out of order or doubled: x %d, y %d", sx.bad, sy.bad)
	}
	// x sends the odd values, y the even ones; the last one is n.
	if max(sx.last, sy.last) != n {
		t.Fatalf("last values %d and %d, want %d", sx.last, sy.last, n)
	}
	// Nothing more arrives: the daemons' outboxes drain and the counts hold.
	deadline := time.Now().Add(time.Minute)
	for pendingOn(a)+pendingOn(b) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outboxes not drained: a %v, b %v", pendingOn(a), pendingOn(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fx, fy := getStats(t, a, "x"), getStats(t, a, "y"); fx != sx || fy != sy {
		t.Fatalf("counts moved after the exchange ended: %+v %+v, then %+v %+v", sx, sy, fx, fy)
	}
	if got := metricValue(t, a.outbox.collectors()[2]); got != 0 {
		t.Fatalf("wasmesh_outbox_pending on a = %v, want 0", got)
	}
}

func pendingOn(n *Node) int {
	total := 0
	for _, d := range n.rt.Daemons() {
		total += d.OutboxLen()
	}
	return total
}

// TestSendToUnknownTargetIsRetried: a message to a daemon that does not
// exist stays in the outbox and is counted, never dropped.
func TestSendToUnknownTargetIsRetried(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	if _, err := a.Deploy(ctx, pingPongModule(t), "pingpong"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "pingpong", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, "x", []byte("start 00000000000000ab 5")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for metricValue(t, a.outbox.retries) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the undeliverable message was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := pendingOn(a); got != 1 {
		t.Fatalf("outbox holds %d, want the 1 undeliverable message", got)
	}
	if got := metricValue(t, a.outbox.notFound); got != 1 {
		t.Fatalf("unknown-target lanes counted %v, want 1 (once per lane)", got)
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestOutboxSurvivesRestart: a message whose target's node is down stays
// in the sender's outbox through a restart of the sender's node (it is in
// the checkpoint) and is delivered, once, when both are back.
func TestOutboxSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startTest(t, "a", dirA)
	b := startTest(t, "b", dirB, a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	_, y := pingPongPair(t, a, b)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, 0)
	if _, err := a.Send(ctx, "x", []byte("start "+y.ID+" 3")); err != nil {
		t.Fatal(err)
	}
	if got := pendingOn(a); got != 1 {
		t.Fatalf("outbox holds %d before the restart, want 1", got)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	a = startTest(t, "a", dirA)
	if got := pendingOn(a); got != 1 {
		t.Fatalf("outbox holds %d after the restart, want the 1 undelivered message", got)
	}
	b = startTest(t, "b", dirB, a.GossipAddr())
	waitPeers(t, a, 1)
	sx, sy := waitReceived(t, a, "x", "y", 3)
	if sx.received != 1 || sy.received != 2 || sx.sent != 2 || sy.sent != 1 || sx.bad+sy.bad != 0 {
		t.Fatalf("after the restart: x %+v, y %+v", sx, sy)
	}
}

// TestRolledBackSendsNeverArrive: a message sent by an event that then
// fails is never delivered; the next committed one is, as seq 1.
func TestRolledBackSendsNeverArrive(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	sender, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "sender.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deploy(ctx, sender, "sender"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Deploy(ctx, pingPongModule(t), "pingpong"); err != nil {
		t.Fatal(err)
	}
	s, err := a.Spawn(ctx, SpawnRequest{Kind: "sender", Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Spawn(ctx, SpawnRequest{Kind: "pingpong", Name: "y"})
	if err != nil {
		t.Fatal(err)
	}
	// The sender fixture's command: count u32, fail u8, target u64, size u32.
	cmd := func(fail byte) []byte {
		c := binary.LittleEndian.AppendUint32(nil, 3)
		c = append(c, fail)
		c = binary.LittleEndian.AppendUint64(c, originOf(t, y.ID))
		return binary.LittleEndian.AppendUint32(c, 16)
	}
	if _, err := a.Send(ctx, "s", cmd(1)); !errors.Is(err, ErrEventFailed) {
		t.Fatalf("failing event: got %v, want ErrEventFailed", err)
	}
	if got := pendingOn(a); got != 0 {
		t.Fatalf("a rolled-back event left %d messages in the outbox", got)
	}
	if _, err := a.Send(ctx, "s", cmd(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for getStats(t, b, "y").received < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the committed messages did not arrive: %+v", getStats(t, b, "y"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	d, err := a.rt.Daemon(originOf(t, s.ID))
	if err != nil {
		t.Fatal(err)
	}
	if d.OutSeq() != 3 {
		t.Fatalf("sender's out seq %d, want 3: the rolled-back sends used no numbers", d.OutSeq())
	}
	if h := ydaemon(t, b, y.ID).Horizon()[d.Origin()]; h != 3 {
		t.Fatalf("target's horizon for the sender is %d, want 3", h)
	}
	for pendingOn(a) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := getStats(t, b, "y").received; got != 3 {
		t.Fatalf("target received %d, want exactly the 3 committed messages", got)
	}
}

func ydaemon(t *testing.T, n *Node, id string) *engine.Daemon {
	t.Helper()
	d, err := n.rt.Daemon(originOf(t, id))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// BenchmarkPingPong reports daemon-to-daemon messages/s across two nodes
// (each message a remote exactly-once delivery, answered by the next), for
// both durability modes.
//
//	go test -run '^$' -bench PingPong ./node/
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range []Durability{DurabilityInterval, DurabilitySync} {
		b.Run(string(mode), func(b *testing.B) {
			ctx := context.Background()
			a := benchNode(b, "a", mode)
			h := benchNode(b, "b", mode, a.GossipAddr())
			for deadline := time.Now().Add(10 * time.Second); len(a.peers()) != 1 || len(h.peers()) != 1; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("nodes did not see each other")
				}
			}
			_, y := pingPongPair(b, a, h)
			b.ResetTimer()
			start := time.Now()
			if _, err := a.Send(ctx, "x", []byte(fmt.Sprintf("start %s %d", y.ID, b.N))); err != nil {
				b.Fatal(err)
			}
			waitReceived(b, a, "x", "y", uint64(b.N))
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
