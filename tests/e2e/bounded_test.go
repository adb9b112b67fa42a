package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// boundedStoreBytes is what a node's store takes on disk: store.db and any
// snapshot files next to it.
func boundedStoreBytes(t *testing.T, data string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(data, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	total := fi.Size()
	es, _ := os.ReadDir(filepath.Join(data, "snapshots"))
	for _, e := range es {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			total += info.Size()
		}
	}
	return total
}

// boundedMetric reads one unlabelled metric from a node's /metrics.
func boundedMetric(p *proc, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// TestBoundedStoreAfterMigrations (issue 9, item 6): a dozen migrations of
// a 64 MiB daemon between two node processes leave each node's store
// (store.db and snapshot files) below 3x the daemon's live state, the
// daemon counts right, and neither migrator keeps inbound memory
// reserved or a base staged afterwards.
func TestBoundedStoreAfterMigrations(t *testing.T) {
	a, b := twoNodes(t)
	const live = 64 << 20
	ok(t, "deploy", repoPath("plugins/examples/testdata/ballast.wasm"), "--kind", "ballast", "--node", a.url())
	ok(t, "spawn", "ballast", "--name", "big", "--node", a.url())
	ok(t, "send", "big", "00000004", "--input-format", "hex", "--node", a.url()) // fill 64 MiB
	nodes := map[string]*proc{"alpha": a, "beta": b}
	to := "beta"
	for i := 1; i <= 12; i++ {
		out := ok(t, "migrate", "big", "--to", to, "--node", a.url())
		// An idle 64 MiB daemon is pre-copied, and its rounds converge.
		if !strings.Contains(out, "pre-copy ") || !strings.Contains(out, "round(s), converged") {
			t.Fatalf("migration %d did not report a converged pre-copy:\n%s", i, out)
		}
		eventually(t, 30*time.Second, "checkpoint on "+to, func() (bool, string) {
			n := boundedStoreBytes(t, nodes[to].data)
			return n >= live/2, fmt.Sprintf("%d bytes", n)
		})
		// In use between moves: every event changes it, so each
		// checkpoint interval (200 ms here) stores it again.
		for j := 0; j < 3; j++ {
			ok(t, "send", "big", "x", "--node", a.url())
			time.Sleep(300 * time.Millisecond)
		}
		for name, p := range nodes {
			t.Logf("after migration %d: %s's store %.1f MiB", i, name, float64(boundedStoreBytes(t, p.data))/(1<<20))
			if n := boundedStoreBytes(t, p.data); n >= 3*live {
				t.Fatalf("after migration %d: %s's store takes %d bytes for a %d-byte daemon", i, name, n, live)
			}
		}
		to = map[string]string{"alpha": "beta", "beta": "alpha"}[to]
	}
	if got := strings.TrimSpace(ok(t, "send", "big", "x", "--node", b.url())); got != "37" {
		t.Fatalf("count after 12 migrations and 36 events = %q, want 37", got)
	}
	for name, p := range nodes {
		for _, m := range []string{"wasmesh_migrator_inbound_bytes", "wasmesh_migrator_staged"} {
			eventually(t, 10*time.Second, name+" "+m, func() (bool, string) {
				v, err := boundedMetric(p, m)
				return err == nil && v == 0, fmt.Sprint(v, err)
			})
		}
	}
}
