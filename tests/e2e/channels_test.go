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
func TestChannelStreamAcrossMigrations(t *testing.T) {
	const perPublisher = 10000
	n1 := startNode(t, "n1", t.TempDir())
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	n3 := startNode(t, "n3", t.TempDir(), "--join", n1.info.Gossip)
	n4 := startNode(t, "n4", t.TempDir(), "--join", n1.info.Gossip)
	eventually(t, 30*time.Second, "four members", func() (bool, string) {
		out := ok(t, "nodes", "--node", n1.url())
		return strings.Count(out, "alive") == 4, out
	})
	ok(t, "deploy", aggregatorWasm(), "--kind", "aggregator", "--node", n1.url())
	ok(t, "channel", "create", "orders", "--node", n2.url())
	ok(t, "spawn", "aggregator", "--name", "pub", "--on", "n1", "--node", n1.url())
	ok(t, "spawn", "aggregator", "--name", "s1", "--on", "n2", "--node", n1.url())
	ok(t, "spawn", "aggregator", "--name", "s2", "--on", "n3", "--node", n1.url())
	ok(t, "subscribe", "s1", "orders", "--node", n4.url())
	ok(t, "subscribe", "s2", "orders", "--node", n4.url())
	if out := ok(t, "subscriptions", "s1", "--node", n3.url()); !strings.Contains(out, "orders") {
		t.Fatalf("subscriptions s1: %s", out)
	}

	var lines strings.Builder
	for i := 1; i <= perPublisher; i++ {
		fmt.Fprintf(&lines, "client %d\n", i)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := run(lines.String(), "publish", "orders", "--stdin", "--node", n1.url())
		errs <- err
	}()
	go func() {
		for range perPublisher / 1000 {
			if _, err := run("", "send", "pub", "pub orders 1000 dpub", "--node", n1.url()); err != nil {
				errs <- err
				return
			}
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
	eventually(t, 60*time.Second, "a tenth of the stream", progress(perPublisher/5))
	ok(t, "migrate", "s1", "--to", "n4", "--node", n1.url())
	ok(t, "migrate", "pub", "--to", "n2", "--node", n1.url())
	eventually(t, 60*time.Second, "half of the stream", progress(perPublisher))
	ok(t, "migrate", "s2", "--to", "n1", "--node", n1.url())
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
