package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func pingPongWasm() string { return repoPath("plugins/examples/pingpong-wat/pingpong-wat.wasm") }

// pingStats is what pingpong-wat's `get` reports.
type pingStats struct{ received, sent, last, anomalies uint64 }

func pingGet(t *testing.T, daemon, url string) (pingStats, string) {
	t.Helper()
	r := cli(t, "", "send", daemon, "get", "--node", url)
	if r.code != 0 {
		return pingStats{}, r.String()
	}
	f := strings.Fields(r.stdout)
	if len(f) != 4 {
		return pingStats{}, r.String()
	}
	var v [4]uint64
	for i := range f {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return pingStats{}, r.String()
		}
		v[i] = n
	}
	return pingStats{v[0], v[1], v[2], v[3]}, r.stdout
}

// TestPingPongAcrossNodeProcesses: two daemons on two node processes bounce
// 10,000 messages with the send import while one of them migrates to a
// third node and the other's node is killed -9 and restarted. Every message
// arrives exactly once and in order: the counts add up to the limit, each
// side received what the other sent, and neither saw a gap or a duplicate.
func TestPingPongAcrossNodeProcesses(t *testing.T) {
	const limit = 10000
	d1 := t.TempDir()
	n1 := startNode(t, "n1", d1)
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	n3 := startNode(t, "n3", t.TempDir(), "--join", n1.info.Gossip)
	ok(t, "deploy", pingPongWasm(), "--kind", "pingpong", "--node", n3.url())
	ok(t, "spawn", "pingpong", "--name", "x", "--on", "n1", "--node", n3.url())
	y := strings.TrimSpace(ok(t, "spawn", "pingpong", "--name", "y", "--on", "n2", "--node", n3.url()))
	ok(t, "send", "x", fmt.Sprintf("start %s %d", y, limit), "--node", n3.url())

	total := func() (uint64, string) {
		xs, xo := pingGet(t, "x", n3.url())
		ys, yo := pingGet(t, "y", n3.url())
		return xs.received + ys.received, "x: " + xo + " y: " + yo
	}
	eventually(t, 60*time.Second, "a fifth of the exchange", func() (bool, string) {
		n, s := total()
		return n >= limit/5, s
	})
	ok(t, "migrate", "y", "--to", "n3", "--node", n3.url())
	eventually(t, 60*time.Second, "half of the exchange", func() (bool, string) {
		n, s := total()
		return n >= limit/2, s
	})
	before, at := total()
	if before >= limit {
		t.Fatalf("the exchange ended before the kill, so the crash was not covered: %s", at)
	}
	n1.kill()
	t.Logf("killed n1 (hosting x) at %d of %d messages", before, limit)
	startNode(t, "n1", d1, "--join", n2.info.Gossip)
	eventually(t, 120*time.Second, "the whole exchange", func() (bool, string) {
		n, s := total()
		return n == limit, s
	})
	xs, _ := pingGet(t, "x", n3.url())
	ys, _ := pingGet(t, "y", n3.url())
	if xs.anomalies != 0 || ys.anomalies != 0 {
		t.Fatalf("messages out of order or twice: x %+v, y %+v", xs, ys)
	}
	if xs.sent != ys.received || ys.sent != xs.received {
		t.Fatalf("sent and received differ: x %+v, y %+v", xs, ys)
	}
	if xs.received+ys.received != limit || max(xs.last, ys.last) != limit {
		t.Fatalf("exchange did not end at %d: x %+v, y %+v", limit, xs, ys)
	}
	// Nothing more is on its way: the counts stay put.
	time.Sleep(500 * time.Millisecond)
	if n, s := total(); n != limit {
		t.Fatalf("after the end more arrived: %d, %s", n, s)
	}
}
