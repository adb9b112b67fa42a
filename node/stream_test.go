package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// streamAll runs one stream of events to ref through via and returns its
// results.
func streamAll(t *testing.T, via *Node, ref, client string, evs []StreamEvent) ([]StreamResult, StreamSummary) {
	t.Helper()
	ctx := context.Background()
	s, err := via.OpenStream(ctx, ref, client)
	if err != nil {
		t.Fatalf("open stream to %s via %s: %v", ref, via.Name(), err)
	}
	in := make(chan []StreamEvent)
	go func() {
		defer close(in)
		for _, ev := range evs {
			in <- []StreamEvent{ev}
		}
	}()
	var out []StreamResult
	sum, err := s.Run(ctx, in, func(r StreamResult) error {
		// The stream reuses a result's slices once emit returns.
		r.Outputs = cloneAll(r.Outputs)
		r.Links = cloneAll(r.Links)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return out, sum
}

func TestStreamAnswersEachEventInOrderWithItsOwnError(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	trap, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "trap.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deploy(ctx, trap, "trap"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "trap", Name: "t"}); err != nil {
		t.Fatal(err)
	}
	bad := fmt.Errorf("%w: line 2 is not hex", ErrBadRequest)
	evs := []StreamEvent{
		{Line: 1, Payload: []byte("x")},
		{Line: 2, Err: bad},
		{Line: 3, Payload: []byte("trap")},
		{Line: 4, Payload: []byte("x")},
		{Line: 5, Payload: []byte("x"), EventID: 9}, // an id without a client id
		{Line: 6, Payload: []byte("x")},
	}
	// Locally (a) and through another node (b): the same answers.
	for i, via := range []*Node{a, b} {
		out, sum := streamAll(t, via, "t", "", evs)
		if len(out) != len(evs) {
			t.Fatalf("via %s: %d results for %d events", via.Name(), len(out), len(evs))
		}
		base := 3 * i
		for j, r := range out {
			if r.Line != j+1 {
				t.Fatalf("via %s: result %d is for line %d", via.Name(), j, r.Line)
			}
		}
		want := func(j int, count int) {
			t.Helper()
			if r := out[j]; r.Err != nil || len(r.Outputs) != 1 || string(r.Outputs[0]) != strconv.Itoa(count) {
				t.Fatalf("via %s: line %d: %+v", via.Name(), j+1, r)
			}
		}
		want(0, base+1)
		if !errors.Is(out[1].Err, ErrBadRequest) || out[1].Err != bad {
			t.Fatalf("via %s: line 2: %v", via.Name(), out[1].Err)
		}
		if !errors.Is(out[2].Err, ErrEventFailed) {
			t.Fatalf("via %s: trapping line 3: %v", via.Name(), out[2].Err)
		}
		want(3, base+2)
		if !errors.Is(out[4].Err, ErrBadRequest) {
			t.Fatalf("via %s: line 5 with an id and no client: %v", via.Name(), out[4].Err)
		}
		want(5, base+3)
		if sum.Events != 6 || sum.Applied != 3 || sum.Failed != 3 || sum.Stopped != nil {
			t.Fatalf("via %s: summary %+v", via.Name(), sum)
		}
	}
	if _, err := a.OpenStream(ctx, "ghost", ""); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("stream to an unknown daemon: %v", err)
	}
	if _, err := a.OpenStream(ctx, "t", "has space"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad client id: %v", err)
	}
}

// A stream by name to a daemon on another node, while the daemon moves to
// the streaming node, back, and there again: every event is applied once,
// in order (the counter's outputs are 1..N), and each answer is its own.
func TestStreamByNameFollowsTheDaemonThroughMigrations(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"}); err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{"", "loader"} {
		s, err := a.OpenStream(ctx, "c", client)
		if err != nil {
			t.Fatal(err)
		}
		before := 0
		if client != "" {
			before = 400 * 3 // the anonymous run's events
		}
		const perLeg = 400
		moves := []string{"a", "b", "a"} // here, away, here again
		in := make(chan []StreamEvent)
		got := make(chan StreamResult, 64)
		done := make(chan error, 1)
		go func() {
			_, err := s.Run(ctx, in, func(r StreamResult) error { got <- r; return nil })
			close(got)
			done <- err
		}()
		line := 0
		var nodes []string
		for leg := range len(moves) {
			// Some events while the migration runs, then wait for it
			// and for their answers, so every leg crosses a move.
			migrated := make(chan error, 1)
			go func() {
				_, err := b.Migrate(ctx, MigrateRequest{Ref: "c", To: moves[leg]}, nil)
				migrated <- err
			}()
			for range perLeg {
				line++
				var id uint64
				if client != "" {
					id = uint64(line)
				}
				in <- []StreamEvent{{Line: line, Payload: []byte("x"), EventID: id}}
				r := <-got
				if r.Err != nil || r.Line != line || r.Duplicate || len(r.Outputs) != 1 || string(r.Outputs[0]) != strconv.Itoa(before+line) {
					t.Fatalf("client %q line %d: %+v (err %v)", client, line, r, r.Err)
				}
				if len(nodes) == 0 || nodes[len(nodes)-1] != r.Node {
					nodes = append(nodes, r.Node)
				}
			}
			if err := <-migrated; err != nil {
				t.Fatalf("migrate to %s: %v", moves[leg], err)
			}
		}
		close(in)
		for r := range got {
			t.Fatalf("extra result %+v", r)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The stream was answered from both sides of the moves.
		if len(nodes) < 2 {
			t.Fatalf("client %q: answered by %v only: the moves did not happen mid-stream", client, nodes)
		}
		if got := send(t, b, "c", "get"); got != strconv.Itoa(before+line) {
			t.Fatalf("count %s after %d events", got, before+line)
		}
		// End where it started, on b, for the next round.
		if _, err := b.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A client that goes away midway: the stream stops, no event is half
// applied, and the applied count the stream reports is the daemon's count.
func TestStreamClientGoneMidwayReportsWhatWasApplied(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, on := range []string{"a", "b"} {
		name := "c" + on
		if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: name, On: on}); err != nil {
			t.Fatal(err)
		}
		s, err := a.OpenStream(ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		in := make(chan []StreamEvent)
		go func() {
			for i := 1; ; i++ {
				select {
				case in <- []StreamEvent{{Line: i, Payload: []byte("x")}}:
				case <-cctx.Done():
					return
				}
			}
		}()
		received := 0
		errGone := errors.New("client gone")
		sum, err := s.Run(cctx, in, func(r StreamResult) error {
			if r.Err != nil {
				t.Errorf("line %d: %v", r.Line, r.Err)
			}
			received++
			if received == 300 {
				cancel() // the connection drops
			}
			if received > 300 {
				return errGone
			}
			return nil
		})
		cancel()
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errGone) {
			t.Fatalf("on %s: stream ended with %v", on, err)
		}
		got, gerr := strconv.Atoi(send(t, a, name, "get"))
		if gerr != nil {
			t.Fatal(gerr)
		}
		if got != sum.Applied || sum.Applied < 300 {
			t.Fatalf("on %s: daemon counted %d, stream reports %d applied (%d results received)", on, got, sum.Applied, received)
		}
		total += got
	}
	_ = b
}

// A daemon that goes away for good mid-stream: the event that could not be
// delivered says so, every later one is answered "not sent" (so a client
// may resend them in order), and nothing after it was applied anywhere.
func TestStreamStopsAtAnEventThatCannotBeDelivered(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	s, err := a.OpenStream(ctx, "c", "")
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan []StreamEvent)
	got := make(chan StreamResult, 16)
	done := make(chan StreamSummary, 1)
	go func() {
		sum, err := s.Run(ctx, in, func(r StreamResult) error { got <- r; return nil })
		if err != nil {
			t.Error(err)
		}
		close(got)
		done <- sum
	}()
	for i := 1; i <= 2; i++ {
		in <- []StreamEvent{{Line: i, Payload: []byte("x")}}
		if r := <-got; r.Err != nil || string(r.Outputs[0]) != strconv.Itoa(i) {
			t.Fatalf("line %d: %+v", i, r)
		}
	}
	if _, err := a.Stop(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 5; i++ {
		in <- []StreamEvent{{Line: i, Payload: []byte("x")}}
	}
	close(in)
	var rs []StreamResult
	for r := range got {
		rs = append(rs, r)
	}
	sum := <-done
	if len(rs) != 3 || sum.Stopped == nil || sum.Applied != 2 {
		t.Fatalf("results %+v, summary %+v", rs, sum)
	}
	for i, r := range rs {
		if r.Line != 3+i || !errors.Is(r.Err, ErrDaemonNotFound) {
			t.Fatalf("line %d: %+v", 3+i, r)
		}
	}
	if !strings.Contains(rs[1].Err.Error(), "not sent") || !strings.Contains(rs[2].Err.Error(), "not sent") {
		t.Fatalf("later events: %v / %v", rs[1].Err, rs[2].Err)
	}
}

func cloneAll(l [][]byte) [][]byte {
	if l == nil {
		return nil
	}
	c := make([][]byte, len(l))
	for i, b := range l {
		c[i] = slices.Clone(b)
	}
	return c
}
