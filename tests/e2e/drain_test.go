package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// drainNodeState is NAME's state as `wasmesh nodes --json` on p says.
func drainNodeState(t *testing.T, p *proc, name string) string {
	t.Helper()
	var ns []node.NodeInfo
	if err := json.Unmarshal([]byte(ok(t, "nodes", "--json", "--node", p.url())), &ns); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Name == name {
			return n.State
		}
	}
	return ""
}

// drainStream is `wasmesh send DAEMON --stdin` fed events until stop is
// called, so it is certain to run through the whole drain.
type drainStream struct {
	cmd     *exec.Cmd
	seen    atomic.Int64
	written int
	lines   []string
	stderr  strings.Builder
	stop    chan struct{}
	fed     chan struct{}
	done    chan error
}

func drainStartStream(t *testing.T, daemon, nodeURL string) *drainStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s := &drainStream{stop: make(chan struct{}), fed: make(chan struct{}), done: make(chan error, 1)}
	s.cmd = exec.CommandContext(ctx, binPath(), "send", daemon, "--stdin", "--node", nodeURL)
	s.cmd.Env = append(os.Environ(), "WASMESH_NODE=http://127.0.0.1:1")
	s.cmd.Stderr = &s.stderr
	in, err := s.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.fed)
		defer in.Close()
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			if _, err := io.WriteString(in, "x\n"); err != nil {
				return
			}
			s.written++
		}
	}()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines = append(s.lines, sc.Text())
			s.seen.Add(1)
		}
		s.done <- s.cmd.Wait()
	}()
	return s
}

// finish stops feeding, waits for the sender to exit 0 and checks that
// every event written was applied once, in order: output i is count i.
func (s *drainStream) finish(t *testing.T, daemon string) int {
	t.Helper()
	close(s.stop)
	<-s.fed
	if err := <-s.done; err != nil {
		t.Fatalf("%s: sender failed (%v) after %d outputs:\n%s", daemon, err, len(s.lines), s.stderr.String())
	}
	if len(s.lines) != s.written {
		t.Fatalf("%s: %d outputs for %d events", daemon, len(s.lines), s.written)
	}
	for j, l := range s.lines {
		if l != strconv.Itoa(j+1) {
			t.Fatalf("%s: output %d = %q, want %d (an event lost or applied twice)", daemon, j, l, j+1)
		}
	}
	return s.written
}

// drainLines parses `node drain --json`: progress lines, then the result.
func drainLines(t *testing.T, out string) (progress []node.DrainProgress, res node.DrainResult) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	got := false
	for sc.Scan() {
		var l struct {
			Progress *node.DrainProgress `json:"progress"`
			Result   *node.DrainResult   `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("drain --json line %q: %v", sc.Text(), err)
		}
		switch {
		case l.Progress != nil:
			progress = append(progress, *l.Progress)
		case l.Result != nil:
			res, got = *l.Result, true
		}
	}
	if !got {
		t.Fatalf("drain --json printed no result:\n%s", out)
	}
	return progress, res
}

// TestDrainEmptiesNodeUnderLoad: 60 daemons on n1, streaming senders to
// three of them by name through n2, `node drain n1` asked through n2 (the
// CLI aims at n1): every daemon ends on n2 or n3 with its exact count, the
// senders see every output once and in order, n1 hosts nothing, shows as
// draining, refuses a spawn on it until undrained.
func TestDrainEmptiesNodeUnderLoad(t *testing.T) {
	ps := addrCluster(t, "n1", "n2", "n3")
	n1, n2 := ps[0], ps[1]
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	const daemons, busy = 60, 3
	for i := range daemons {
		ok(t, "spawn", "counter", "--name", fmt.Sprintf("c%d", i), "--on", "n1", "--node", n1.url())
	}
	var streams []*drainStream
	for i := range busy {
		streams = append(streams, drainStartStream(t, fmt.Sprintf("c%d", i), n2.url()))
	}
	eventually(t, 20*time.Second, "streams under way", func() (bool, string) {
		for _, s := range streams {
			if s.seen.Load() < 100 {
				return false, fmt.Sprint(s.seen.Load())
			}
		}
		return true, ""
	})

	before := streams[0].seen.Load()
	out := ok(t, "node", "drain", "n1", "--parallel", "8", "--json", "--node", n2.url())
	after := streams[0].seen.Load()
	progress, res := drainLines(t, out)
	t.Logf("c0's sender had %d outputs when the drain started, %d when it ended; drain %.0f ms", before, after, res.Millis)
	if res.Node != "n1" || res.Total != daemons || res.Moved != daemons || res.Failed != 0 || len(res.Daemons) != daemons {
		t.Fatalf("drain result %+v", res)
	}
	if len(progress) < daemons || progress[len(progress)-1].Remaining != 0 {
		t.Fatalf("%d progress lines, last %+v", len(progress), progress[len(progress)-1])
	}
	sent := make([]int, busy)
	for i, s := range streams {
		sent[i] = s.finish(t, fmt.Sprintf("c%d", i))
	}

	var all []node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", n2.url())), &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != daemons {
		t.Fatalf("ps lists %d daemons, want %d", len(all), daemons)
	}
	for _, d := range all {
		if d.Node != "n2" && d.Node != "n3" {
			t.Errorf("%s is on %q after the drain", d.Name, d.Node)
		}
	}
	for i := range daemons {
		want := 0
		if i < busy {
			want = sent[i]
		}
		if got := strings.TrimSpace(ok(t, "send", fmt.Sprintf("c%d", i), "get", "--node", n1.url())); got != strconv.Itoa(want) {
			t.Errorf("c%d counts %s, want %d", i, got, want)
		}
	}
	var local []node.DaemonInfo
	_ = json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", n1.url())), &local)
	for _, d := range local {
		if d.Node == "n1" {
			t.Errorf("n1 still hosts %s", d.Name)
		}
	}

	if st := drainNodeState(t, n2, "n1"); st != "draining" {
		t.Fatalf("nodes on n2 shows n1 %q, want draining", st)
	}
	failsWith(t, 1, "draining", "spawn", "counter", "--name", "late", "--on", "n1", "--node", n2.url())
	failsWith(t, 1, "draining", "migrate", "c0", "--to", "n1", "--node", n2.url())

	if got := ok(t, "node", "undrain", "n1", "--node", n2.url()); !strings.Contains(got, "undrained") {
		t.Fatalf("undrain said %q", got)
	}
	eventually(t, 10*time.Second, "n1 alive again", func() (bool, string) {
		st := drainNodeState(t, n2, "n1")
		return st == "alive", st
	})
	ok(t, "spawn", "counter", "--name", "late", "--on", "n1", "--node", n2.url())
}
