package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// TestMigrateBetweenNodeProcesses: a daemon moves between two real node
// processes while a second CLI keeps sending through the other node; the
// count is exact afterwards, the old node forwards to the new one, and the
// new node checkpoints the daemon it adopted.
func TestMigrateBetweenNodeProcesses(t *testing.T) {
	a, b := twoNodes(t)
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--node", a.url()))
	if got := ok(t, "send", id, "1", "2", "3", "--node", b.url()); got != "1\n2\n3\n" {
		t.Fatalf("send before migration = %q", got)
	}

	// Keep a stream of events going through beta during the move.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sent int
	var sendErr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := cli(t, "", "send", id, "x", "--node", b.url())
			if r.code != 0 {
				sendErr = r.String()
				return
			}
			sent++
		}
	}()
	time.Sleep(300 * time.Millisecond)
	out := ok(t, "migrate", id, "--to", "beta", "--json", "--node", a.url())
	close(stop)
	wg.Wait()
	if sendErr != "" {
		t.Fatalf("a send failed during the migration: %s", sendErr)
	}
	var res node.MigrateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("migrate --json: %v: %s", err, out)
	}
	if res.Daemon != id || res.From != "alpha" || res.To != "beta" || res.SnapshotBytes == 0 || res.TotalMillis <= 0 || res.PauseMillis > res.TotalMillis {
		t.Fatalf("migrate result = %+v", res)
	}
	// Through the old node: it answers "moved" and the call follows.
	want := 3 + sent
	if got := strings.TrimSpace(ok(t, "send", id, "get", "--node", a.url())); got != strconv.Itoa(want) {
		t.Fatalf("count after migration via the old node = %s, want %d", got, want)
	}
	var ps []node.DaemonInfo
	json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", a.url())), &ps)
	if len(ps) != 1 || ps[0].Node != "beta" {
		t.Fatalf("ps after migration: %+v", ps)
	}

	// The target recorded the daemon, so a restart of beta brings it back.
	eventually(t, 10*time.Second, "checkpoint on beta", func() (bool, string) {
		st := ok(t, "stats", id, "--json", "--node", b.url())
		var info node.DaemonInfo
		_ = json.Unmarshal([]byte(st), &info)
		return info.CheckpointInputSeq > 0, st
	})

	// Bad input: unknown node, missing --to, migrating to where it already is.
	failsWith(t, 1, "", "migrate", id, "--to", "nowhere", "--node", a.url())
	failsWith(t, 2, "to", "migrate", id, "--node", a.url())
	failsWith(t, 2, "already runs", "migrate", id, "--to", "beta", "--node", b.url())
}
