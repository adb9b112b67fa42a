package e2e

import (
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/netfault"
)

// Each test runs three node processes behind fault proxies, a counter
// daemon addressed by name, two exactly-once writers and a reader through
// different nodes, and migrations back and forth under one fault kind; the
// history checker then proves nothing acknowledged was lost, nothing was
// applied twice and no read was stale. tests/e2e/FAULTS.md lists them.

// faultMoves migrates the daemon round the nodes n times through f0's admin
// API, each move retried for a while (a move may fail under faults; the
// daemon then stays where it was), and returns how many moved.
func faultMoves(c *faultCluster, daemon string, n int) int {
	c.t.Helper()
	moved := 0
	for i := range n {
		on, why := c.owner(c.nodes[0], daemon)
		if on == "" {
			c.t.Fatalf("move %d: %s", i, why)
		}
		to := c.nodes[0].name
		for j, fn := range c.nodes {
			if fn.name == on {
				to = c.nodes[(j+1)%len(c.nodes)].name
			}
		}
		for try := 0; try < 3; try++ {
			okm, out := c.migrate(c.nodes[0], daemon, to, 6*time.Second)
			if okm {
				c.t.Logf("move %d %s -> %s", i, on, to)
				moved++
				break
			}
			c.t.Logf("move %d %s -> %s failed (try %d): %s", i, on, to, try, out)
			if now, _ := c.owner(c.nodes[0], daemon); now != on {
				c.t.Fatalf("a failed move left the daemon on %q, not %s", now, on)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return moved
}

func faultRun(t *testing.T, seed uint64, f netfault.Faults, moves int) {
	c := faultStart(t, 3, seed)
	c.faultDaemon("ctr", "f1")
	c.setAll(f)
	l := c.faultWorkload("ctr", []string{"f0", "f2"}, "f2", 0)
	time.Sleep(500 * time.Millisecond)
	moved := faultMoves(c, "ctr", moves)
	res := l.finish()
	if moved < moves {
		t.Fatalf("%d of %d migrations succeeded under %+v", moved, moves, f)
	}
	if res.Acked < 20 || res.Reads < 10 {
		t.Fatalf("too little work to prove anything: %s", res)
	}
}

// TestFaultsDelayJitter: 10 ms each way plus up to 10 ms of jitter (RTT
// 20-40 ms, packets reordered).
func TestFaultsDelayJitter(t *testing.T) {
	faultRun(t, 101, netfault.Both(netfault.Link{Delay: 10 * time.Millisecond, Jitter: 10 * time.Millisecond}), 4)
}

// TestFaultsLoss: 5% of the packets lost each way.
func TestFaultsLoss(t *testing.T) {
	faultRun(t, 202, netfault.Both(netfault.Link{Loss: 0.05, Delay: time.Millisecond}), 4)
}

// TestFaultsDuplication: 30% of the packets delivered twice, with a little
// jitter so that the copies arrive out of order.
func TestFaultsDuplication(t *testing.T) {
	faultRun(t, 303, netfault.Both(netfault.Link{Duplicate: 0.3, Jitter: 2 * time.Millisecond}), 4)
}

// TestFaultsPartitionOneNode: the daemon's node is cut off (QUIC both ways;
// gossip still says it is alive) for 6 s, longer than the mesh's idle
// timeout, so every connection to it dies: a move away from it fails and
// leaves it there; after the heal the nodes redial, the writers' retries
// land exactly once and moves work again. Then a node the clients talk through is cut off
// while the daemon moves between the other two.
func TestFaultsPartitionOneNode(t *testing.T) {
	c := faultStart(t, 3, 404)
	c.faultDaemon("ctr", "f1")
	l := c.faultWorkload("ctr", []string{"f0", "f2"}, "f2", 0)
	time.Sleep(500 * time.Millisecond)

	c.partition("f1")
	cut := time.Now()
	time.Sleep(500 * time.Millisecond)
	if okm, out := c.migrate(c.nodes[0], "ctr", "f2", 2*time.Second); okm {
		t.Fatalf("moved off a partitioned node: %s", out)
	}
	time.Sleep(time.Until(cut.Add(6 * time.Second)))
	c.heal()
	if on, why := c.owner(c.nodes[0], "ctr"); on != "f1" {
		t.Fatalf("after a failed move off f1 the daemon is on %q: %s", on, why)
	}
	if moved := faultMoves(c, "ctr", 2); moved < 1 { // f1 -> f2 -> f0
		t.Fatal("no move succeeded after the partition healed")
	}

	// A bystander: f2 (a writer's and the reader's node) is cut off while
	// the daemon moves between f0 and f1.
	on, _ := c.owner(c.nodes[0], "ctr")
	to := "f1"
	if on == "f1" {
		to = "f0"
	}
	c.partition("f2")
	var moved bool
	var out string
	for try := 0; try < 3 && !moved; try++ {
		moved, out = c.migrate(c.nodes[0], "ctr", to, 10*time.Second)
	}
	if !moved {
		t.Fatalf("a move between two healthy nodes failed while a third was cut off: %s", out)
	}
	time.Sleep(2 * time.Second)
	res := l.finish()
	if res.Acked < 20 {
		t.Fatalf("too little work: %s", res)
	}
}

// TestFaultsAsymmetricPartition: the daemon's node hears everything but
// every packet it sends is lost, for 6 s: events reach the daemon and run,
// their answers never come back (unknown to the writers, who resend the
// same event ids each second), and its peers drop their connections to it
// while it still holds them. Right after the heal a move off it runs on
// those half-open connections and may stall and abort with the writers'
// resends in its buffer; each event must be applied once (this found
// TestAbortKeepsExactlyOnce's bug). Then the target of a move is muted the
// same way: the move fails and the daemon runs on one node only.
func TestFaultsAsymmetricPartition(t *testing.T) {
	c := faultStart(t, 3, 505)
	c.faultDaemon("ctr", "f1")
	l := c.faultWorkload("ctr", []string{"f0", "f2"}, "f2", time.Second)
	time.Sleep(500 * time.Millisecond)

	c.mute("f1")
	cut := time.Now()
	time.Sleep(500 * time.Millisecond)
	if okm, out := c.migrate(c.nodes[0], "ctr", "f2", 2*time.Second); okm {
		t.Fatalf("moved off a muted node: %s", out)
	}
	time.Sleep(time.Until(cut.Add(6 * time.Second)))
	c.heal()
	okm, out := c.migrate(c.nodes[0], "ctr", "f2", 4*time.Second)
	t.Logf("move f1 -> f2 right after the heal: moved=%v %s", okm, out)
	if !okm && faultMoves(c, "ctr", 1) != 1 { // f1 -> f2
		t.Fatal("no move succeeded after the heal")
	}

	// Mute the target of the next move (f2 -> f0).
	c.mute("f0")
	okm, out = c.migrate(c.nodes[2], "ctr", "f0", 3*time.Second)
	c.heal()
	on, why := c.owner(c.nodes[2], "ctr")
	if on == "" {
		t.Fatalf("after a move to a muted node: %s", why)
	}
	t.Logf("move to the muted f0: moved=%v, daemon on %s: %s", okm, on, out)
	time.Sleep(time.Second)
	res := l.finish()
	if res.Acked < 20 {
		t.Fatalf("too little work: %s", res)
	}
}

// TestFaultsSlowAnswersAbortMove: everything the target sends is delayed
// 2 s (an asymmetric delay), so a move to it needs longer than its 3.5 s
// timeout and is aborted midway; the daemon must stay where it was with
// every event applied once, and the next move, on a healed network, works.
func TestFaultsSlowAnswersAbortMove(t *testing.T) {
	c := faultStart(t, 3, 606)
	c.faultDaemon("ctr", "f1")
	l := c.faultWorkload("ctr", []string{"f0", "f2"}, "f2", time.Second)
	time.Sleep(500 * time.Millisecond)
	slow := netfault.Link{Delay: 2 * time.Second}
	c.cut("f2", netfault.Faults{Out: slow}, netfault.Faults{In: slow})
	if okm, out := c.migrate(c.nodes[0], "ctr", "f2", 3500*time.Millisecond); okm {
		t.Fatalf("a move needing two 4 s round trips finished within 3.5 s: %s", out)
	}
	c.heal()
	if on, why := c.owner(c.nodes[0], "ctr"); on != "f1" {
		t.Fatalf("after the aborted move the daemon is on %q, not f1: %s", on, why)
	}
	if faultMoves(c, "ctr", 1) != 1 {
		t.Fatal("the move after the heal failed")
	}
	res := l.finish()
	if res.Acked < 20 {
		t.Fatalf("too little work: %s", res)
	}
}

// TestFaultsAdvertiseRefused: a malformed --advertise is refused as input
// (exit 2) before the node joins anything.
func TestFaultsAdvertiseRefused(t *testing.T) {
	for _, bad := range []string{"nohost", "127.0.0.1:0", ":7402"} {
		failsWith(t, 2, "advertise", "node", "--dev", "--data", t.TempDir(), "--admin", "127.0.0.1:0",
			"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--advertise", bad)
	}
}
