package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// travelCluster starts n1 and n2 (joined to n1) and waits until each sees
// both alive.
func travelCluster(t *testing.T) (n1, n2 *proc) {
	t.Helper()
	n1 = startNode(t, "n1", t.TempDir())
	n2 = startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	travelWaitMembers(t, n1, n2)
	return n1, n2
}

func travelWaitMembers(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		eventually(t, 20*time.Second, "membership seen by "+p.info.Name, func() (bool, string) {
			r := cli(t, "", "nodes", "--json", "--node", p.url())
			var ns []node.NodeInfo
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
				return false, r.String()
			}
			alive := 0
			for _, n := range ns {
				if n.State == "alive" && n.Address != "" {
					alive++
				}
			}
			return alive == len(ps), r.stdout
		})
	}
}

// travelRestart starts a node again on its data dir and its previous
// ports (so the cluster's view of its address stays right), joined to seed.
func travelRestart(t *testing.T, old *proc, seed *proc) *proc {
	t.Helper()
	u, err := url.Parse(old.url())
	if err != nil {
		t.Fatal(err)
	}
	p := startNode(t, old.info.Name, old.data, "--join", seed.info.Gossip,
		"--listen", old.info.QUIC, "--gossip", old.info.Gossip, "--admin", u.Host)
	travelWaitMembers(t, seed, p)
	return p
}

func travelPS(t *testing.T, via *proc) []node.DaemonInfo {
	t.Helper()
	var ps []node.DaemonInfo
	out := ok(t, "ps", "--json", "--node", via.url())
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("ps --json: %v: %s", err, out)
	}
	return ps
}

func travelStats(t *testing.T, via *proc, ref string) node.DaemonInfo {
	t.Helper()
	var st node.DaemonInfo
	out := ok(t, "stats", ref, "--json", "--node", via.url())
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v: %s", err, out)
	}
	return st
}

// travelCountIs waits until `send c1 get` (through via) answers want: a
// restarted node may still be rejoining.
func travelCountIs(t *testing.T, via *proc, ref string, want int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s counts %d", ref, want), func() (bool, string) {
		r := cli(t, "", "send", ref, "get", "--node", via.url())
		return r.code == 0 && strings.TrimSpace(r.stdout) == fmt.Sprint(want), r.String()
	})
}

// Issue 9, item 2: a daemon that arrived by migration is brought back by a
// restart of its new node, whether it stopped cleanly or was killed, and
// even when its module file is gone (then it is fetched from a peer).
func TestTravelRestartAfterMigration(t *testing.T) {
	for _, how := range []string{"sigterm", "kill-9", "module-deleted"} {
		t.Run(how, func(t *testing.T) {
			n1, n2 := travelCluster(t)
			ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
			ok(t, "spawn", "counter", "--name", "c1", "--on", "n1", "--node", n1.url())
			for i := 1; i <= 5; i++ {
				if got := strings.TrimSpace(ok(t, "send", "c1", "x", "--node", n1.url())); got != fmt.Sprint(i) {
					t.Fatalf("send %d answered %q", i, got)
				}
			}
			ok(t, "migrate", "c1", "--to", "n2", "--node", n1.url())
			switch how {
			case "sigterm":
				n2.stop()
			default:
				n2.kill()
			}
			if how == "module-deleted" {
				mods := filepath.Join(n2.data, "modules", "sha256")
				if err := os.RemoveAll(mods); err != nil {
					t.Fatal(err)
				}
			}
			n2 = travelRestart(t, n2, n1)
			travelCountIs(t, n1, "c1", 5)
			travelCountIs(t, n2, "c1", 5)
			ps := travelPS(t, n1)
			if len(ps) != 1 || ps[0].Name != "c1" || ps[0].Node != "n2" || ps[0].Failed {
				t.Fatalf("ps after the restart: %+v", ps)
			}
			if got := strings.TrimSpace(ok(t, "send", "c1", "x", "--node", n1.url())); got != "6" {
				t.Fatalf("next event after the restart answered %q, want 6", got)
			}
			log := n2.log.String()
			if how == "module-deleted" {
				// Loud, naming the daemon and the digest, then recovered.
				if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "module is missing") ||
					!strings.Contains(log, ps[0].ID) || !strings.Contains(log, ps[0].Digest) || !strings.Contains(log, "fetched missing module") {
					t.Fatalf("restart log does not report the missing module and its fetch:\n%s", log)
				}
			} else if strings.Contains(log, "not recovered") || strings.Contains(log, "module is missing") {
				t.Fatalf("restart log reports a problem:\n%s", log)
			}
		})
	}
}

func logcountWasm() string { return repoPath("plugins/examples/testdata/logcount.wasm") }

// Issue 9, item 5: what an operator sees of a daemon (its logs, its kind
// name, its counters) moves with it and survives a restart of its new node.
func TestTravelLogsCountersKind(t *testing.T) {
	n1, n2 := travelCluster(t)
	ok(t, "deploy", logcountWasm(), "--kind", "logcount", "--node", n1.url())
	ok(t, "spawn", "logcount", "--name", "c1", "--on", "n1", "--node", n1.url())
	const sent = 5
	for i := 1; i <= sent; i++ {
		ok(t, "send", "c1", "x", "--node", n1.url())
	}
	var want []string
	for i := 1; i <= sent; i++ {
		want = append(want, fmt.Sprintf("[info] event %d", i))
	}
	check := func(stage string, via *proc) {
		t.Helper()
		logs := ok(t, "logs", "c1", "--node", via.url())
		for _, w := range want {
			if !strings.Contains(logs, w) {
				t.Fatalf("%s: logs c1 lacks %q:\n%s", stage, w, logs)
			}
		}
		if n := strings.Count(logs, "\n"); n != len(want) {
			t.Fatalf("%s: logs c1 has %d lines, want %d:\n%s", stage, n, len(want), logs)
		}
		ps := travelPS(t, via)
		if len(ps) != 1 || ps[0].Node != "n2" || ps[0].Kind != "logcount" || ps[0].Name != "c1" {
			t.Fatalf("%s: ps: %+v", stage, ps)
		}
		table := ok(t, "ps", "--node", via.url())
		if !strings.Contains(table, "logcount") {
			t.Fatalf("%s: ps table does not show the kind:\n%s", stage, table)
		}
		st := travelStats(t, via, "c1")
		if st.EventsProcessed != uint64(len(want)) || st.InputSeq != uint64(len(want)) || st.EventsEmitted != uint64(len(want)) {
			t.Fatalf("%s: stats: events_processed %d, events_emitted %d, input_seq %d; want %d",
				stage, st.EventsProcessed, st.EventsEmitted, st.InputSeq, len(want))
		}
	}
	ok(t, "migrate", "c1", "--to", "n2", "--node", n1.url())
	check("after the migration", n1)
	check("after the migration, via n2", n2)

	ok(t, "send", "c1", "x", "--node", n1.url())
	want = append(want, fmt.Sprintf("[info] event %d", sent+1))
	n2.stop()
	n2 = travelRestart(t, n2, n1)
	travelCountIs(t, n1, "c1", sent+1)
	// The get above counts as an event processed (and logs).
	want = append(want, fmt.Sprintf("[info] event %d", sent+1))
	check("after a restart of the target", n1)
}
