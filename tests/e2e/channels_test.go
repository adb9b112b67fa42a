package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func aggregatorWasm() string { return repoPath("plugins/examples/aggregator-go/aggregator-go.wasm") }

// aggGet is aggregator-go's `get`: total, anomalies and publisher ->
// "count:last".
func aggGet(t *testing.T, daemon, url string) (total, anomalies int, per map[string]string, raw string) {
	t.Helper()
	r := cli(t, "", "send", daemon, "get", "--node", url)
	if r.code != 0 {
		return -1, -1, nil, r.String()
	}
	per = map[string]string{}
	for _, line := range strings.Fields(r.stdout) {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "total":
			total, _ = strconv.Atoi(v)
		case "anomalies":
			anomalies, _ = strconv.Atoi(v)
		default:
			per[k] = v
		}
	}
	return total, anomalies, per, r.stdout
}

// run is cli for a goroutine: no t, the error in the result.
func run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(), args...)
	cmd.Env = append(os.Environ(), "WASMESH_NODE=http://127.0.0.1:1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("wasmesh %s: %w: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// TestChannelStreamAcrossMigrations is issue 14's channel run with node
// processes and the CLI: an outside publisher (`wasmesh publish --stdin`)
// and a publisher daemon each stream 10,000 messages to a channel with two
// subscriber daemons on two other nodes; during the stream each subscriber
// migrates once and the publisher daemon migrates once. Afterwards each
// subscriber counted exactly what was published, once, in order per
// publisher (the aggregator counts a seq other than last+1 as an anomaly).
// On top, the node s1 moved to is killed -9 and restarted mid-stream.
func TestChannelStreamAcrossMigrations(t *testing.T) {
	const perPublisher = 10000
	n1 := startNode(t, "n1", t.TempDir())
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	n3 := startNode(t, "n3", t.TempDir(), "--join", n1.info.Gossip)
	d4 := t.TempDir()
	n4 := startNode(t, "n4", d4, "--join", n1.info.Gossip)
	eventually(t, 30*time.Second, "four members", func() (bool, string) {
		out := ok(t, "nodes", "--node", n1.url())
		return strings.Count(out, "alive") == 4, out
	})
	// On every node, so a move does not wait for the target to fetch and
	// compile the module, and lands in the middle of the stream.
	for _, n := range []*proc{n1, n2, n3, n4} {
		ok(t, "deploy", aggregatorWasm(), "--kind", "aggregator", "--node", n.url())
	}
	ok(t, "channel", "create", "orders", "--node", n2.url())
	ok(t, "spawn", "aggregator", "--name", "pub", "--on", "n1", "--node", n1.url())
	ok(t, "spawn", "aggregator", "--name", "s1", "--on", "n2", "--node", n1.url())
	ok(t, "spawn", "aggregator", "--name", "s2", "--on", "n3", "--node", n1.url())
	ok(t, "subscribe", "s1", "orders", "--node", n4.url())
	ok(t, "subscribe", "s2", "orders", "--node", n4.url())
	if out := ok(t, "subscriptions", "s1", "--node", n3.url()); !strings.Contains(out, "orders") {
		t.Fatalf("subscriptions s1: %s", out)
	}

	// Both publishers go in steps of `step`, paced, so that the stream
	// lasts long enough for three migrations to land inside it.
	const step = 250
	errs := make(chan error, 2)
	moved := make(chan struct{})
	hold := func(sent int) {
		if sent == perPublisher*9/10 {
			<-moved // the last tenth waits until every move is done
		}
	}
	go func() {
		for from := 1; from <= perPublisher; from += step {
			hold(from - 1)
			var lines strings.Builder
			for i := from; i < from+step; i++ {
				fmt.Fprintf(&lines, "client %d\n", i)
			}
			if _, err := run(lines.String(), "publish", "orders", "--stdin", "--node", n1.url()); err != nil {
				errs <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		errs <- nil
	}()
	go func() {
		for i := 0; i < perPublisher/step; {
			hold(i * step)
			_, err := run("", "send", "pub", fmt.Sprintf("pub orders %d dpub", step), "--node", n1.url())
			if err != nil && strings.Contains(err.Error(), "outbox full") {
				// Backpressure: the event failed whole (nothing of it was
				// published); try it again once the outbox drained.
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			i++
			time.Sleep(50 * time.Millisecond)
		}
		errs <- nil
	}()
	progress := func(want int) func() (bool, string) {
		return func() (bool, string) {
			a, _, _, ra := aggGet(t, "s1", n1.url())
			b, _, _, rb := aggGet(t, "s2", n1.url())
			return a >= want && b >= want, "s1: " + ra + " s2: " + rb
		}
	}
	// Each move must land inside the stream, or it proves nothing.
	during := func(what string) {
		a, _, _, ra := aggGet(t, "s1", n1.url())
		b, _, _, rb := aggGet(t, "s2", n1.url())
		if a >= 2*perPublisher || b >= 2*perPublisher {
			t.Fatalf("the stream ended before %s: s1 %s s2 %s", what, ra, rb)
		}
		t.Logf("%s at s1=%d s2=%d of %d", what, a, b, 2*perPublisher)
	}
	eventually(t, 60*time.Second, "a tenth of the stream", progress(perPublisher/5))
	during("s1's move")
	ok(t, "migrate", "s1", "--to", "n4", "--node", n1.url())
	during("the publisher's move")
	ok(t, "migrate", "pub", "--to", "n2", "--node", n1.url())
	during("s2's move")
	ok(t, "migrate", "s2", "--to", "n1", "--node", n1.url())
	// And s1's new node dies with kill -9 and comes back: what s1 applied
	// and acknowledged is on disk; the rest its home sends again.
	during("the kill -9 of s1's node")
	n4.kill()
	startNode(t, "n4", d4, "--join", n1.info.Gossip)
	close(moved)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"client": fmt.Sprintf("%d:%d", perPublisher, perPublisher), "dpub": fmt.Sprintf("%d:%d", perPublisher, perPublisher)}
	for _, s := range []string{"s1", "s2"} {
		eventually(t, 120*time.Second, s+" has every message", func() (bool, string) {
			total, anomalies, per, raw := aggGet(t, s, n3.url())
			if anomalies != 0 || total > 2*perPublisher {
				t.Fatalf("%s: lost, doubled or out of order: %s", s, raw)
			}
			return total == 2*perPublisher && maps.Equal(per, want), raw
		})
	}
	// Nothing more is on its way.
	time.Sleep(500 * time.Millisecond)
	for _, s := range []string{"s1", "s2"} {
		if total, _, _, raw := aggGet(t, s, n2.url()); total != 2*perPublisher {
			t.Fatalf("%s after the end: %s", s, raw)
		}
	}
	ls := ok(t, "channel", "ls", "--json", "--node", n3.url())
	if !strings.Contains(ls, `"published": 20000`) && !strings.Contains(ls, `"published":20000`) {
		t.Fatalf("channel ls: %s", ls)
	}
}

// TestChannelHomeKilled: the node homing a channel dies with kill -9 in
// the middle of a stream. Its successor held a replica of every input the
// home had confirmed, takes the channel over with its queues, and the
// outside publisher's retries (with a client id, so each message counts
// once) go on there: each subscriber ends with every message exactly once,
// in order.
func TestChannelHomeKilled(t *testing.T) {
	const total, step = 6000, 250
	nodes := []*proc{startNode(t, "n1", t.TempDir())}
	for _, name := range []string{"n2", "n3", "n4"} {
		nodes = append(nodes, startNode(t, name, t.TempDir(), "--join", nodes[0].info.Gossip))
	}
	eventually(t, 30*time.Second, "four members", func() (bool, string) {
		out := ok(t, "nodes", "--node", nodes[0].url())
		return strings.Count(out, "alive") == 4, out
	})
	for _, n := range nodes {
		ok(t, "deploy", aggregatorWasm(), "--kind", "aggregator", "--node", n.url())
	}
	out := ok(t, "channel", "create", "orders", "--node", nodes[0].url())
	var home *proc
	for _, n := range nodes {
		if strings.Contains(out, "home "+n.info.Name) {
			home = n
		}
	}
	if home == nil {
		t.Fatalf("no home named in %q", out)
	}
	var others []*proc
	for _, n := range nodes {
		if n != home {
			others = append(others, n)
		}
	}
	via := others[0]
	ok(t, "spawn", "aggregator", "--name", "s1", "--on", others[1].info.Name, "--node", via.url())
	ok(t, "spawn", "aggregator", "--name", "s2", "--on", others[2].info.Name, "--node", via.url())
	ok(t, "subscribe", "s1", "orders", "--node", via.url())
	ok(t, "subscribe", "s2", "orders", "--node", via.url())

	errs := make(chan error, 1)
	killed := make(chan struct{})
	go func() {
		for from := 1; from <= total; from += step {
			if from == total/2+1 {
				<-killed
			}
			var lines strings.Builder
			for i := from; i < from+step; i++ {
				fmt.Fprintf(&lines, "client %d\n", i)
			}
			// A request that fails (the home died under it) is sent again
			// whole: the client id and first id make the resend exact.
			deadline := time.Now().Add(60 * time.Second)
			for {
				_, err := run(lines.String(), "publish", "orders", "--stdin", "--client", "c1", "--first-id", strconv.Itoa(from), "--timeout", "20s", "--node", via.url())
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					errs <- err
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		errs <- nil
	}()
	eventually(t, 60*time.Second, "a third of the stream", func() (bool, string) {
		a, _, _, ra := aggGet(t, "s1", via.url())
		return a >= total/3, ra
	})
	home.kill()
	t.Logf("killed the home %s", home.info.Name)
	close(killed)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"client": fmt.Sprintf("%d:%d", total, total)}
	for _, s := range []string{"s1", "s2"} {
		eventually(t, 90*time.Second, s+" has every message", func() (bool, string) {
			got, anomalies, per, raw := aggGet(t, s, via.url())
			if anomalies != 0 || got > total {
				t.Fatalf("%s: lost, doubled or out of order: %s", s, raw)
			}
			return got == total && maps.Equal(per, want), raw
		})
	}
}
