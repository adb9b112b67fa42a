package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// durStream runs `wasmesh send DAEMON --stdin` against url, feeding one
// event per line for as long as the sender accepts them, and reports each
// output line (the counter's count after that event) on acks. It returns
// when the sender exits (the node died) or ctx ends.
type durStream struct {
	acks chan int
	done chan struct{}
	last int // the last count acknowledged; valid after done
	err  string
}

func durStartStream(t *testing.T, ctx context.Context, url, daemon string) *durStream {
	t.Helper()
	// A few events in flight at once (the stream's pipeline), so that a
	// crash leaves at most durWindow applied without an answer.
	cmd := exec.CommandContext(ctx, binPath(), "send", daemon, "--stdin", "--window", strconv.Itoa(durWindow), "--node", url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &durStream{acks: make(chan int, 1<<16), done: make(chan struct{})}
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := io.WriteString(stdin, "e"+strconv.Itoa(i)+"\n"); err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err != nil {
				continue
			}
			s.last = n
			select {
			case s.acks <- n:
			default:
			}
		}
		_ = cmd.Wait()
		s.err = stderr.String()
	}()
	return s
}

// durWindow is the events durStream has on their way at once. Up to twice
// that may be applied and not yet printed when the sender is killed: the
// window, and answers read with the last batch but not yet written out.
const durWindow = 8

// durCount asks the counter for its count without changing it.
func durCount(t *testing.T, url, daemon string) int {
	t.Helper()
	out := strings.TrimSpace(ok(t, "send", daemon, "get", "--node", url))
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("get answered %q", out)
	}
	return n
}

// durWaitAcks waits until the stream acknowledged at least n events.
func durWaitAcks(t *testing.T, s *durStream, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case got := <-s.acks:
			if got >= n {
				return
			}
		case <-s.done:
			t.Fatalf("sender stopped after %d acknowledged events: %s", s.last, s.err)
		case <-deadline:
			t.Fatalf("only %d events acknowledged within 60s", s.last)
		}
	}
}

// TestKill9KeepsAcknowledgedEvents is the case: 200 events
// acknowledged, kill -9, restart: the count is 200, not the last
// checkpoint's. Checkpoints are made rare so only the journal can save them.
func TestKill9KeepsAcknowledgedEvents(t *testing.T) {
	data := t.TempDir()
	a := startNode(t, "solo", data, "--checkpoint-interval", "1h")
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "c1", "--node", a.url())
	var in strings.Builder
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&in, "%d\n", i)
	}
	res := cli(t, in.String(), "send", "c1", "--stdin", "--node", a.url())
	if res.code != 0 || strings.Count(res.stdout, "\n") != 200 || !strings.HasSuffix(res.stdout, "200\n") {
		t.Fatalf("send of 200 events: %s", res)
	}
	// A daemon whose state depends on the clock and randomness it read:
	// the redo must feed back exactly what each event consumed.
	ok(t, "deploy", repoPath("plugins/examples/testdata/entropy.wasm"), "--kind", "entropy", "--node", a.url())
	ok(t, "spawn", "entropy", "--name", "e1", "--node", a.url())
	ticks := cli(t, strings.Repeat("tick\n", 50), "send", "e1", "--stdin", "--output-format", "hex", "--node", a.url())
	lines := strings.Fields(ticks.stdout)
	if ticks.code != 0 || len(lines) != 50 {
		t.Fatalf("50 ticks: %s", ticks)
	}
	a.kill()
	b := startNode(t, "solo", data, "--checkpoint-interval", "1h")
	if got := strings.TrimSpace(ok(t, "send", "e1", "get", "--output-format", "hex", "--node", b.url())); got != lines[49] {
		t.Fatalf("entropy daemon after kill -9: state %s, acknowledged %s", got, lines[49])
	}
	if got := durCount(t, b.url(), "c1"); got != 200 {
		t.Fatalf("after kill -9 and restart c1 counts %d, want the 200 acknowledged events\n%s", got, b.log.String())
	}
	if !strings.Contains(b.log.String(), "journal_events=200") {
		t.Errorf("restart log does not say 200 journaled events were redone:\n%s", b.log.String())
	}
	// The redone state is journaled again: a second kill -9 keeps it too.
	ok(t, "send", "c1", "x", "--node", b.url())
	b.kill()
	c := startNode(t, "solo", data, "--checkpoint-interval", "1h")
	if got := durCount(t, c.url(), "c1"); got != 201 {
		t.Fatalf("after a second kill -9: %d, want 201", got)
	}
	body := httpGet(t, c.url()+"/metrics")
	if !strings.Contains(body, "wasmesh_journal_fsyncs_total") || !strings.Contains(body, "wasmesh_journal_failed 0") {
		t.Errorf("metrics lack the journal series:\n%s", body)
	}

	// Switching to --durability interval after a crash keeps what the
	// journal holds: the node redoes it, checkpoints, and only then lets go.
	ok(t, "send", "c1", "y", "--node", c.url())
	c.kill()
	d := startNode(t, "solo", data, "--checkpoint-interval", "1h", "--durability", "interval")
	if got := durCount(t, d.url(), "c1"); got != 202 {
		t.Fatalf("after kill -9 and a restart with --durability interval: %d, want 202", got)
	}
	d.kill()
	e := startNode(t, "solo", data, "--checkpoint-interval", "1h", "--durability", "interval")
	if got := durCount(t, e.url(), "c1"); got != 202 {
		t.Fatalf("the journal was let go before its events were checkpointed: %d, want 202", got)
	}
	failsWith(t, 2, "--durability", "node", "--data", t.TempDir(), "--durability", "fast", "--dev")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKill9WhileStreaming kills the hosting node at a random moment while a
// sender streams events to it by name through another node. After the
// restart the daemon holds every acknowledged event, plus at most the one
// in flight, whose sender never heard back.
func TestKill9WhileStreaming(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	for round := range 2 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			n1 := startNode(t, "n1", t.TempDir())
			d2 := t.TempDir()
			n2 := startNode(t, "n2", d2, "--join", n1.info.Gossip, "--checkpoint-interval", "1s")
			ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
			ok(t, "spawn", "counter", "--name", "c1", "--on", "n2", "--node", n1.url())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Through n1 (remote delivery) in round 0, straight to n2 in round 1.
			via := n1.url()
			if round == 1 {
				via = n2.url()
			}
			s := durStartStream(t, ctx, via, "c1")
			durWaitAcks(t, s, 50+rng.IntN(600))
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			n2.kill()
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				cancel()
				<-s.done
			}
			acked := s.last
			cancel()
			n2b := startNode(t, "n2", d2, "--join", n1.info.Gossip, "--checkpoint-interval", "1s")
			got := durCount(t, n2b.url(), "c1")
			if got < acked || got > acked+2*durWindow {
				t.Fatalf("after kill -9 at a random moment: count %d, acknowledged %d (at most %d more may have been in flight)\n%s",
					got, acked, 2*durWindow, n2b.log.String())
			}
			t.Logf("acknowledged %d, recovered %d", acked, got)
		})
	}
}

// TestKill9SourceDuringMigration kills the node a daemon is moving away
// from at a random moment of the move, while a sender streams to it by name
// through a third node. Wherever the daemon ends up, exactly one node has
// it and it holds every acknowledged event (plus at most the one in flight).
func TestKill9SourceDuringMigration(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("seed %d", seed)
	d1 := t.TempDir()
	n1 := startNode(t, "n1", d1, "--checkpoint-interval", "1s")
	n2 := startNode(t, "n2", t.TempDir(), "--join", n1.info.Gossip)
	n3 := startNode(t, "n3", t.TempDir(), "--join", n1.info.Gossip)
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n3.url())
	ok(t, "spawn", "counter", "--name", "c1", "--on", "n1", "--node", n3.url())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := durStartStream(t, ctx, n3.url(), "c1")
	durWaitAcks(t, s, 200+rng.IntN(300))
	mig := exec.Command(binPath(), "migrate", "c1", "--to", "n2", "--node", n1.url())
	if err := mig.Start(); err != nil {
		t.Fatal(err)
	}
	// The CLI starts, asks n1, and the move itself takes tens of
	// milliseconds: this window covers before, during and after it.
	time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
	n1.kill()
	_ = mig.Wait()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		// The daemon had already moved: the sender goes on through n3.
	}
	cancel()
	<-s.done
	acked := s.last
	n1b := startNode(t, "n1", d1, "--join", n2.info.Gossip, "--checkpoint-interval", "1s")
	// A name on two nodes is refused as ambiguous: a by-name send that
	// works means exactly one node has c1.
	eventually(t, 20*time.Second, "exactly one node hosts c1", func() (bool, string) {
		r := cli(t, "", "send", "c1", "get", "--node", n3.url())
		return r.code == 0, r.String()
	})
	var where node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "stats", "c1", "--json", "--node", n3.url())), &where); err != nil {
		t.Fatal(err)
	}
	got := durCount(t, n3.url(), "c1")
	if got < acked || got > acked+2*durWindow {
		t.Fatalf("count %d, acknowledged %d (at most %d more may have been in flight)\nn1 restarted:\n%s", got, acked, 2*durWindow, n1b.log.String())
	}
	t.Logf("acknowledged %d, count %d, c1 on %s", acked, got, where.Node)
}

// TestKill9WithClientEventIDs: a sender with a client id streams a fixed
// number of events by name through n1 to c1 on n2; n2 is killed -9 at a
// random moment and restarted while the sender keeps resending what got
// no answer. At the end the count is exactly the number of events: every
// event applied once, none lost, none twice.
func TestKill9WithClientEventIDs(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	t.Logf("seed %d", seed)
	const events = 1500
	n1 := startNode(t, "n1", t.TempDir())
	d2 := t.TempDir()
	n2 := startNode(t, "n2", d2, "--join", n1.info.Gossip, "--checkpoint-interval", "1s")
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	ok(t, "spawn", "counter", "--name", "c1", "--on", "n2", "--node", n1.url())

	cmd := exec.Command(binPath(), "send", "c1", "--stdin", "--client-id", "loader-1", "--retry-for", "60s", "--node", n1.url())
	var in strings.Builder
	for i := 1; i <= events; i++ {
		fmt.Fprintf(&in, "e%d\n", i)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAt := 100 + rng.IntN(events-400)
	// The input comes in two parts, the second only once the node was
	// killed and restarted: however fast the stream is (it may have
	// answered the whole first part by then), the kill lands in its
	// middle, with events still to send over the same stream.
	lineEnd := func(k int) int { return strings.Index(in.String(), fmt.Sprintf("\ne%d\n", k)) + 1 }
	cut := lineEnd(min(killAt+200, events))
	resume := make(chan struct{})
	go func() {
		defer stdin.Close()
		io.WriteString(stdin, in.String()[:cut])
		<-resume
		io.WriteString(stdin, in.String()[cut:])
	}()
	lines := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines++
		if lines == killAt {
			n2.kill()
			n2 = startNode(t, "n2", d2, "--join", n1.info.Gossip, "--checkpoint-interval", "1s")
			close(resume)
		}
	}
	if lines < killAt {
		close(resume) // the sender ended early: let the writer go
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sender: %v\n%s", err, stderr.String())
	}
	dups := strings.Count(stderr.String(), "already applied")
	if lines+dups != events {
		t.Fatalf("%d outputs and %d duplicates for %d events\n%s", lines, dups, events, stderr.String())
	}
	if got := durCount(t, n1.url(), "c1"); got != events {
		t.Fatalf("count %d after %d exactly-once events across a kill -9 at event %d", got, events, killAt)
	}
	t.Logf("killed at output %d; %d resends answered as already applied", killAt, dups)
}
