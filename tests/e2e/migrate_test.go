package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/node/admin"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--name", "mover", "--node", a.url()))
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
	if len(ps) != 1 || ps[0].Node != "beta" || ps[0].Name != "mover" {
		t.Fatalf("ps after migration: %+v", ps)
	}
	// The name came along: by name, through the old node.
	if got := strings.TrimSpace(ok(t, "send", "mover", "get", "--node", a.url())); got != strconv.Itoa(want) {
		t.Fatalf("send by name after migration = %s, want %d", got, want)
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

// TestMigrate20000EventsBetweenProcesses is the zero-loss proof between
// real node processes: four clients stream 20,000 events through beta to a
// counter on alpha while it migrates alpha → beta. Afterwards the count is
// exactly 20,000, every output's causal link validates from genesis across
// the move, and the horizon came along.
func TestMigrate20000EventsBetweenProcesses(t *testing.T) {
	a, b := twoNodes(t)
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--node", a.url()))
	origin, err := abi.ParseOrigin(id)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := admin.NewClient(a.url(), "")
	cb, _ := admin.NewClient(b.url(), "")
	ctx := context.Background()

	const clients, each = 4, 5000
	type out struct {
		link    chain.Link
		payload string
	}
	var mu sync.Mutex
	var outs []out
	var sent atomic.Int64
	errc := make(chan error, clients)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := cb.Send(ctx, id, []byte("x"))
				if err != nil {
					errc <- err
					return
				}
				if len(res.Links) != len(res.Outputs) {
					errc <- fmt.Errorf("%d links for %d outputs", len(res.Links), len(res.Outputs))
					return
				}
				mu.Lock()
				for j := range res.Outputs {
					l, err := chain.DecodeLink(res.Links[j])
					if err != nil {
						mu.Unlock()
						errc <- err
						return
					}
					outs = append(outs, out{l, string(res.Outputs[j])})
				}
				mu.Unlock()
				sent.Add(1)
			}
		}()
	}
	for sent.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	before, err := ca.Stats(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ca.Migrate(ctx, id, admin.MigrateBody{To: "beta"}, nil)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("client: %v", err)
	}
	after, err := cb.Stats(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Node != "beta" || after.InputSeq != clients*each {
		t.Fatalf("after the move: node %s, input seq %d; want beta, %d", after.Node, after.InputSeq, clients*each)
	}
	if len(outs) != clients*each {
		t.Fatalf("%d outputs for %d events", len(outs), clients*each)
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].link.Sequence < outs[j].link.Sequence })
	v := chain.NewGenesisValidator(origin)
	for i, o := range outs {
		if err := v.Accept(o.link, []byte(o.payload)); err != nil {
			t.Fatalf("output %d: %v", i, err)
		}
		if o.payload != strconv.Itoa(i+1) {
			t.Fatalf("output %d says %s", i, o.payload)
		}
	}
	const client = "0000000000000000"
	if len(after.Horizon) == 0 || after.Horizon[client] < before.Horizon[client] {
		t.Fatalf("horizon before %v, after %v", before.Horizon, after.Horizon)
	}
	t.Logf("20,000 events across a migration between processes: total %.1f ms, pause %.1f ms, %d buffered, %d forwarded",
		res.TotalMillis, res.PauseMillis, res.EventsBuffered, res.EventsForwarded)
}
