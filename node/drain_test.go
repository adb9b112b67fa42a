package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrainMovesEveryDaemonExactlyOnce: a drain empties a onto b and c
// while senders keep sending by name through b; every daemon ends on
// another node with exactly the events it was acknowledged, a refuses
// spawns (local or placed from a peer) and migrations into it while
// draining, and takes them again once undrained.
func TestDrainMovesEveryDaemonExactlyOnce(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	for _, n := range []*Node{a, b, c} {
		waitPeers(t, n, 2)
		if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
			t.Fatal(err)
		}
	}
	const daemons, busy = 12, 3
	for i := range daemons {
		if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	sent := make([]int, busy)
	errs := make(chan error, busy)
	var wg sync.WaitGroup
	for i := range busy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.Send(ctx, fmt.Sprintf("d%d", i), []byte("x")); err != nil {
					errs <- fmt.Errorf("send d%d after %d: %w", i, sent[i], err)
					return
				}
				sent[i]++
			}
		}()
	}
	var events []DrainProgress
	res, err := a.Drain(ctx, DrainRequest{Node: "a", Parallel: 3}, func(p DrainProgress) { events = append(events, p) })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("drain: %v (%+v)", err, res)
	}
	if res.Total != daemons || res.Moved != daemons || res.Failed != 0 || len(res.Daemons) != daemons {
		t.Fatalf("result %+v", res)
	}
	if last := events[len(events)-1]; last.Moved != daemons || last.Remaining != 0 {
		t.Fatalf("last progress %+v", last)
	}
	if n := len(a.LocalDaemons()); n != 0 {
		t.Fatalf("a still hosts %d daemons", n)
	}
	if nb, nc := len(b.LocalDaemons()), len(c.LocalDaemons()); nb+nc != daemons || nb == 0 || nc == 0 {
		t.Fatalf("b hosts %d, c %d: not spread over both", nb, nc)
	}
	for i := range daemons {
		want := 1
		if i < busy {
			want = sent[i] + 1
		}
		if got := send(t, c, fmt.Sprintf("d%d", i), "x"); got != strconv.Itoa(want) {
			t.Errorf("d%d counted %s, want %d (sent %d during the drain)", i, got, want, want-1)
		}
	}

	if !a.Draining() {
		t.Fatal("a is not draining after the drain")
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "late"}); !errors.Is(err, ErrDraining) {
		t.Fatalf("local spawn on a draining node: %v", err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "late", On: "a"}); !errors.Is(err, ErrDraining) {
		t.Fatalf("spawn placed on a draining node from a peer: %v", err)
	}
	waitFor(t, "b to see a draining", func() bool {
		for _, ni := range b.Nodes() {
			if ni.Name == "a" {
				return ni.State == "draining"
			}
		}
		return false
	})
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "d0", To: "a"}, nil); !errors.Is(err, ErrDraining) {
		t.Fatalf("migration into a draining node: %v", err)
	}
	for _, cand := range b.mem.Candidates() {
		if cand.NodeID == a.id.String() {
			t.Fatal("b's schedulers still count the draining a as a candidate")
		}
	}

	if err := a.Undrain(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "late", On: "a"}); err != nil {
		t.Fatalf("spawn after undrain: %v", err)
	}
}

// TestDrainingSurvivesRestart: the flag is in the store, so a restarted
// node still refuses work until it is undrained.
func TestDrainingSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startTest(t, "a", dir)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if err := a.setDraining(true); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	a = startTest(t, "a", dir)
	if !a.Draining() {
		t.Fatal("restart forgot the drain")
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter"}); !errors.Is(err, ErrDraining) {
		t.Fatalf("spawn after restart: %v", err)
	}
	if err := a.Undrain(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter"}); err != nil {
		t.Fatalf("spawn after undrain: %v", err)
	}
	if _, err := a.Drain(ctx, DrainRequest{Node: "a"}, nil); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("drain with nowhere to go: %v", err)
	}
	a.drainRunning.Store(true)
	if _, err := a.Drain(ctx, DrainRequest{Node: "a"}, nil); !errors.Is(err, ErrDraining) {
		t.Fatalf("a second drain while one runs: %v", err)
	}
	a.drainRunning.Store(false)
	if _, err := a.Drain(ctx, DrainRequest{Parallel: -1}, nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("negative parallel: %v", err)
	}
}

// TestDrainPlanSpreadsAndRetriesElsewhere: picks go to the least-loaded
// target counting earlier picks, and a retry avoids targets already tried
// while another is left.
func TestDrainPlanSpreadsAndRetriesElsewhere(t *testing.T) {
	p := &drainPlan{load: map[string]int{"a": 0, "b": 3, "c": 1}}
	var got []string
	for range 6 {
		got = append(got, p.pick(nil))
	}
	// Always the least loaded, ties to the smaller id: a a c a c a.
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	if strings.Join(got, "") != "aacaca" || p.load["a"] != 4 || p.load["b"] != 3 || p.load["c"] != 3 || count["b"] != 0 {
		t.Fatalf("picks %v leave loads %v", got, p.load)
	}
	p.unassign("a")
	if id := p.pick(map[string]bool{"a": true}); id == "a" {
		t.Fatal("retry went back to the target that just failed while others were left")
	}
	if id := p.pick(map[string]bool{"a": true, "b": true, "c": true}); id == "" {
		t.Fatal("no target when every one was tried: the least loaded should be retried")
	}
}
