//go:build soak

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// TestDrainSoak500 is the drain at scale: 500 small daemons
// (counter-wat, one 64 KiB page) on n1, streaming senders to 20 of them,
// `node drain n1` to n2 and n3. Run with -tags soak (minutes, not CI).
func TestDrainSoak500(t *testing.T) {
	ps := addrCluster(t, "n1", "n2", "n3")
	n1, n2 := ps[0], ps[1]
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	const daemons, busy = 500, 20
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if r := cli(t, "", "spawn", "counter", "--name", fmt.Sprintf("s%d", i), "--on", "n1", "--node", n1.url()); r.code != 0 {
					t.Errorf("spawn s%d: %s", i, r)
				}
			}
		}()
	}
	for i := range daemons {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var streams []*drainStream
	for i := range busy {
		streams = append(streams, drainStartStream(t, fmt.Sprintf("s%d", i), n2.url()))
	}
	eventually(t, 30*time.Second, "streams under way", func() (bool, string) {
		for _, s := range streams {
			if s.seen.Load() < 50 {
				return false, fmt.Sprint(s.seen.Load())
			}
		}
		return true, ""
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(), "node", "drain", "n1", "--to", "n2", "--to", "n3", "--parallel", "16", "--json", "--node", n2.url())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node drain: %v\n%s", err, stderr.String())
	}
	out := string(raw)
	took := time.Since(start)
	_, res := drainLines(t, out)
	if res.Moved != daemons || res.Failed != 0 {
		t.Fatalf("drain moved %d, failed %d of %d", res.Moved, res.Failed, res.Total)
	}
	var pauses []float64
	for _, d := range res.Daemons {
		pauses = append(pauses, d.PauseMillis)
	}
	slices.Sort(pauses)
	t.Logf("drain of %d daemons: %s (node says %.0f ms), %d bytes, pause p50 %.1f ms p99 %.1f ms",
		daemons, took, res.Millis, res.Bytes, pauses[len(pauses)/2], pauses[len(pauses)*99/100])
	sent := make([]int, busy)
	for i, s := range streams {
		sent[i] = s.finish(t, fmt.Sprintf("s%d", i))
	}
	for i := range daemons {
		want := 0
		if i < busy {
			want = sent[i]
		}
		if got := strings.TrimSpace(ok(t, "send", fmt.Sprintf("s%d", i), "get", "--node", n1.url())); got != strconv.Itoa(want) {
			t.Errorf("s%d counts %s, want %d", i, got, want)
		}
	}
	if st := drainNodeState(t, n2, "n1"); st != "draining" {
		t.Fatalf("n1 is %q, want draining", st)
	}
	failsWith(t, 1, "draining", "spawn", "counter", "--on", "n1", "--node", n2.url())
	var all []node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", n2.url())), &all); err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.Node == "n1" {
			t.Errorf("n1 still hosts %s", d.Name)
		}
	}
}
