package meshquic

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
)

// seqOps is a LocalOps + PipelineOps that records, per target, the Seq of
// every event it applied, in order. A target in gates blocks until its
// channel closes; one in movedAt stops being hosted after that many events
// and routes name where it went.
type seqOps struct {
	*fakeOps
	ep *Endpoint

	mu      sync.Mutex
	applied map[uint64][]uint64
	gates   map[uint64]chan struct{}
	entered chan uint64
	movedAt map[uint64]int
	movedTo NodeID
	// bounce: the first event refused after the move brings the daemon
	// back here at once, as a migration straight back would.
	bounce    bool
	commits   int
	commitErr error
}

func newSeqOps(ep *Endpoint, hosted ...uint64) *seqOps {
	o := &seqOps{fakeOps: newFakeOps(), ep: ep, applied: map[uint64][]uint64{},
		gates: map[uint64]chan struct{}{}, movedAt: map[uint64]int{}, entered: make(chan uint64, 1024)}
	for _, h := range hosted {
		o.hosted[h] = true
	}
	ep.ServeLocalOps(o)
	return o
}

func (o *seqOps) Apply(ctx context.Context, ev Event, resp *DeliverResponse) error {
	o.mu.Lock()
	gate := o.gates[ev.Target]
	o.mu.Unlock()
	if gate != nil {
		select {
		case o.entered <- ev.Target:
		default: // the tests wait for the first ones only
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.fakeOps.hosted[ev.Target] {
		if o.bounce {
			o.fakeOps.hosted[ev.Target] = true
		}
		return ErrNotHosted
	}
	o.applied[ev.Target] = append(o.applied[ev.Target], ev.Seq)
	if k, ok := o.movedAt[ev.Target]; ok && len(o.applied[ev.Target]) == k {
		// It leaves right after this event, as a migration would.
		o.fakeOps.hosted[ev.Target] = false
		o.ep.Routes().SetMoved(ev.Target, o.movedTo, 9)
	}
	l := chain.Next(chain.Genesis(ev.Target), chain.GenesisHash(ev.Target), ev.Seq)
	resp.Outputs = append(resp.Outputs, Output{Link: l.AppendBinary(nil), Payload: ev.Payload})
	return nil
}

func (o *seqOps) Commit(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commits++
	return o.commitErr
}

// moveAfter makes target leave for to after k events. Under the lock:
// the server reads it from goroutines whose only tie to the test's is the
// network, which the race detector cannot see.
func (o *seqOps) moveAfter(target uint64, k int, to NodeID, bounce bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.movedAt[target] = k
	o.movedTo = to
	o.bounce = bounce
}

func (o *seqOps) gate(target uint64) chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := make(chan struct{})
	o.gates[target] = ch
	return ch
}

func (o *seqOps) seqs(target uint64) []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.applied[target]...)
}

// pipePair is a client endpoint and a server endpoint with seqOps.
func pipePair(t *testing.T, hosted ...uint64) (*Endpoint, *Endpoint, *seqOps) {
	t.Helper()
	ca := newCA(t)
	a, srv := newEndpoint(t, ca), newEndpoint(t, ca)
	ops := newSeqOps(srv, hosted...)
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	return a, srv, ops
}

func goEvent(ctx context.Context, e *Endpoint, to NodeID, target, seq uint64, done chan *DeliverCall) *DeliverCall {
	c := &DeliverCall{To: to, Event: Event{Target: target, Sender: 1, Seq: seq, Payload: []byte(fmt.Sprint(seq))}, Done: done}
	e.Go(ctx, c)
	return c
}

// wantSeqs checks that got is exactly from..to in order.
func wantSeqs(t *testing.T, what string, got []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from+1 {
		t.Fatalf("%s: %d events, want %d", what, len(got), to-from+1)
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d", what, i, s, from+uint64(i))
		}
	}
}

func TestPipelineOrderPerTargetAcrossBatches(t *testing.T) {
	a, srv, ops := pipePair(t, 1, 2, 3)
	ctx := ctxTimeout(t, 20*1e9)
	const n = 1500
	done := make(chan *DeliverCall, 3*n)
	// Interleave three daemons; keep many calls in flight so batches form.
	for i := uint64(1); i <= n; i++ {
		for tg := uint64(1); tg <= 3; tg++ {
			goEvent(ctx, a, srv.ID(), tg, i, done)
		}
	}
	next := map[uint64]uint64{1: 1, 2: 1, 3: 1}
	for range 3 * n {
		c := <-done
		if c.Err != nil {
			t.Fatalf("event %d to %d: %v", c.Event.Seq, c.Event.Target, c.Err)
		}
		if c.Event.Seq != next[c.Event.Target] {
			t.Fatalf("daemon %d completed seq %d, want %d", c.Event.Target, c.Event.Seq, next[c.Event.Target])
		}
		next[c.Event.Target]++
		if len(c.Resp.Outputs) != 1 || string(c.Resp.Outputs[0].Payload) != fmt.Sprint(c.Event.Seq) || len(c.Resp.Outputs[0].Link) != chain.LinkSize {
			t.Fatalf("event %d: outputs %+v", c.Event.Seq, c.Resp.Outputs)
		}
	}
	for tg := uint64(1); tg <= 3; tg++ {
		wantSeqs(t, fmt.Sprint("daemon ", tg), ops.seqs(tg), 1, n)
	}
	ops.mu.Lock()
	commits := ops.commits
	ops.mu.Unlock()
	// Commits are per run of queued events, not per event.
	if commits >= 3*n {
		t.Fatalf("%d commits for %d events: no run was committed together", commits, 3*n)
	}
}

func TestPipelineSlowDaemonDoesNotDelayAnother(t *testing.T) {
	a, srv, ops := pipePair(t, 1, 2)
	ctx := ctxTimeout(t, 20*1e9)
	gate := ops.gate(1)
	slowDone := make(chan *DeliverCall, 8)
	for i := uint64(1); i <= 4; i++ {
		goEvent(ctx, a, srv.ID(), 1, i, slowDone)
	}
	<-ops.entered // daemon 1 is now stuck in its first event
	const n = 500
	done := make(chan *DeliverCall, n)
	for i := uint64(1); i <= n; i++ {
		goEvent(ctx, a, srv.ID(), 2, i, done)
	}
	for range n {
		select {
		case c := <-done:
			if c.Err != nil {
				t.Fatal(c.Err)
			}
		case <-ctx.Done():
			t.Fatal("daemon 2's events did not complete while daemon 1 was blocked")
		}
	}
	if got := ops.seqs(1); len(got) != 0 {
		t.Fatalf("daemon 1 applied %v while blocked", got)
	}
	select {
	case c := <-slowDone:
		t.Fatalf("slow daemon's event %d completed while blocked", c.Event.Seq)
	default:
	}
	close(gate)
	for i := uint64(1); i <= 4; i++ {
		c := <-slowDone
		if c.Err != nil || c.Event.Seq != i {
			t.Fatalf("slow event %d: seq %d err %v", i, c.Event.Seq, c.Err)
		}
	}
	wantSeqs(t, "daemon 2", ops.seqs(2), 1, n)
}

func TestPipelineTargetWindowBlocksOnlyItsCaller(t *testing.T) {
	a, srv, ops := pipePair(t, 1, 2)
	ctx := ctxTimeout(t, 20*1e9)
	gate := ops.gate(1)
	slowDone := make(chan *DeliverCall, PipeTargetWindow+1)
	for i := uint64(1); i <= PipeTargetWindow; i++ {
		goEvent(ctx, a, srv.ID(), 1, i, slowDone)
	}
	<-ops.entered
	returned := make(chan struct{})
	go func() {
		goEvent(ctx, a, srv.ID(), 1, PipeTargetWindow+1, slowDone)
		close(returned)
	}()
	// Other daemons on the same peer still flow while daemon 1's window
	// is full and its next caller waits.
	for i := uint64(1); i <= 50; i++ {
		if _, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 2, Seq: i}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-returned:
		t.Fatal("Go returned with daemon 1's window full")
	default:
	}
	close(gate)
	<-returned
	for i := uint64(1); i <= PipeTargetWindow+1; i++ {
		if c := <-slowDone; c.Err != nil || c.Event.Seq != i {
			t.Fatalf("event %d: seq %d err %v", i, c.Event.Seq, c.Err)
		}
	}
	wantSeqs(t, "daemon 1", ops.seqs(1), 1, PipeTargetWindow+1)
}

func TestPipelineWindowWaitHonoursContext(t *testing.T) {
	a, srv, ops := pipePair(t, 1)
	ctx := ctxTimeout(t, 20*1e9)
	gate := ops.gate(1)
	defer close(gate)
	done := make(chan *DeliverCall, PipeTargetWindow+1)
	for i := uint64(1); i <= PipeTargetWindow; i++ {
		goEvent(ctx, a, srv.ID(), 1, i, done)
	}
	<-ops.entered
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c := goEvent(cctx, a, srv.ID(), 1, PipeTargetWindow+1, done)
	if got := <-done; got != c || !errors.Is(c.Err, context.Canceled) {
		t.Fatalf("got call %d err %v, want the cancelled one with context.Canceled", got.Event.Seq, got.Err)
	}
}

func TestPipelineConnectionLossFailsInFlightAndRedials(t *testing.T) {
	a, srv, ops := pipePair(t, 1, 2)
	ctx := ctxTimeout(t, 20*1e9)
	if _, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 2, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	gate := ops.gate(1)
	done := make(chan *DeliverCall, 10)
	for i := uint64(1); i <= 10; i++ {
		goEvent(ctx, a, srv.ID(), 1, i, done)
	}
	<-ops.entered
	// Drop the connection under the calls.
	a.RemovePeer(srv.ID())
	for i := uint64(1); i <= 10; i++ {
		c := <-done
		wantErr(t, c.Err, ErrPeerUnavailable)
		if c.Event.Seq != i {
			t.Fatalf("failed call %d came as number %d", c.Event.Seq, i)
		}
	}
	close(gate)
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	resp, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 2, Seq: 2, Payload: []byte("again")}})
	if err != nil {
		t.Fatalf("after the connection broke, the next call did not redial: %v", err)
	}
	if string(resp.Outputs[0].Payload) != "again" {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
}

func TestPipelineMovedFollowedInOrder(t *testing.T) {
	ca := newCA(t)
	a, old, nu := newEndpoint(t, ca), newEndpoint(t, ca), newEndpoint(t, ca)
	oldOps := newSeqOps(old, 5)
	newOps := newSeqOps(nu, 5)
	oldOps.moveAfter(5, 40, nu.ID(), false)
	a.SetPeerAddr(old.ID(), old.Addr().String())
	a.SetPeerAddr(nu.ID(), nu.Addr().String())
	old.SetPeerAddr(nu.ID(), nu.Addr().String())
	ctx := ctxTimeout(t, 20*1e9)
	const n = 400
	done := make(chan *DeliverCall, n)
	for i := uint64(1); i <= n; i++ {
		goEvent(ctx, a, old.ID(), 5, i, done)
	}
	for i := uint64(1); i <= n; i++ {
		c := <-done
		if c.Err != nil {
			t.Fatalf("event %d: %v", c.Event.Seq, c.Err)
		}
		if c.Event.Seq != i {
			t.Fatalf("completion %d is event %d", i, c.Event.Seq)
		}
		if want := map[bool]NodeID{true: old.ID(), false: nu.ID()}[i <= 40]; c.To != want {
			t.Fatalf("event %d answered by %s, want %s", i, c.To, want)
		}
	}
	wantSeqs(t, "old node", oldOps.seqs(5), 1, 40)
	wantSeqs(t, "new node", newOps.seqs(5), 41, n)
	if r, ok := a.Routes().Lookup(5); !ok || r.Node != nu.ID() {
		t.Fatalf("route after moved: %+v %v", r, ok)
	}
}

func TestPipelineFallsBackToDeliver(t *testing.T) {
	ca := newCA(t)
	a, srv := newEndpoint(t, ca), newEndpoint(t, ca)
	ops := newFakeOps()
	ops.hosted[7] = true
	srv.ServeLocalOps(ops) // no PipelineOps
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	ctx := ctxTimeout(t, 10*1e9)
	done := make(chan *DeliverCall, 100)
	for i := uint64(1); i <= 100; i++ {
		goEvent(ctx, a, srv.ID(), 7, i, done)
	}
	for i := uint64(1); i <= 100; i++ {
		if c := <-done; c.Err != nil || c.Event.Seq != i || string(c.Resp.Outputs[0].Payload) != fmt.Sprint(i) {
			t.Fatalf("event %d: seq %d err %v", i, c.Event.Seq, c.Err)
		}
	}
	_, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 8}})
	wantErr(t, err, ErrRemote, ErrNotHosted)
}

// A client that ignores the per-daemon window gets the excess refused,
// and the server's reader never waits on the daemon.
func TestPipelineServerRefusesBeyondWindow(t *testing.T) {
	a, srv, ops := pipePair(t, 1)
	ctx := ctxTimeout(t, 10*1e9)
	gate := ops.gate(1)
	s, err := a.OpenStream(ctx, PeerID(srv.ID()), SubDeliverPipe)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = PipeTargetWindow + 10
	f := newFrameBuf(pipeTypeEvents, 1<<30)
	for i := uint64(1); i <= n; i++ {
		f.b = appendEventItem(f.item(0), i, 0, &Event{Target: 1, Seq: i})
	}
	if _, err := s.qs.Write(f.take(nil)); err != nil {
		t.Fatal(err)
	}
	<-ops.entered
	// One frame is queued under one lock: the window's worth is taken, the
	// rest are refused at once while the daemon is still blocked.
	var res []pipeResult
	var outs []pipeOut
	refused := 0
	for refused < n-PipeTargetWindow {
		var raw rawBody
		if err := s.recvRaw(&raw); err != nil {
			t.Fatal(err)
		}
		if res, outs, err = decodeResultBatch(raw.b, res[:0], outs[:0]); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.status != statusError || string(r.code) != CodeOverloaded {
				t.Fatalf("result %d: status %d code %q before the daemon ran", r.id, r.status, r.code)
			}
			refused++
		}
	}
	close(gate)
	ok := 0
	for ok < PipeTargetWindow {
		var raw rawBody
		if err := s.recvRaw(&raw); err != nil {
			t.Fatal(err)
		}
		if res, outs, err = decodeResultBatch(raw.b, res[:0], outs[:0]); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.status != statusOK || r.id != uint64(ok+1) {
				t.Fatalf("result %d: status %d, want ok for %d", r.id, r.status, ok+1)
			}
			ok++
		}
	}
	wantSeqs(t, "daemon 1", ops.seqs(1), 1, PipeTargetWindow)
}

func TestPipelineUnknownAndClosed(t *testing.T) {
	a, srv, _ := pipePair(t, 1)
	ctx := ctxTimeout(t, 10*1e9)
	var ghost NodeID
	ghost[0] = 0xee
	_, err := a.RemoteDeliver(ctx, ghost, DeliverRequest{Event: Event{Target: 1}})
	wantErr(t, err, ErrUnknownPeer)
	// A peer that could not be reached is forgotten with its writer.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p := a.pipe()
		p.mu.Lock()
		_, kept := p.peers[ghost]
		p.mu.Unlock()
		if !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unreachable peer is still kept")
		}
	}
	if _, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 1, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	_, err = a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 1, Seq: 2}})
	wantErr(t, err, ErrClosed)
}

// bigOps answers each event with an output twice its size.
type bigOps struct{ *fakeOps }

func (bigOps) Apply(ctx context.Context, ev Event, resp *DeliverResponse) error {
	l := chain.Next(chain.Genesis(ev.Target), chain.GenesisHash(ev.Target), ev.Seq)
	resp.Outputs = append(resp.Outputs, Output{Link: l.AppendBinary(nil), Payload: append(append([]byte(nil), ev.Payload...), ev.Payload...)})
	return nil
}

func (bigOps) Commit(context.Context) error { return nil }

// An answer too large for a frame fails that event alone; the stream and
// the events around it carry on.
func TestPipelineOversizedAnswerFailsOnlyItsEvent(t *testing.T) {
	ca := newCA(t)
	small := func() Config { c := testConfig(creds(t, ca)); c.MaxFrame = 4096; return c }
	a, srv := listen(t, small()), listen(t, small())
	srv.ServeLocalOps(bigOps{newFakeOps()})
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	ctx := ctxTimeout(t, 10*1e9)
	done := make(chan *DeliverCall, 3)
	for i, size := range []int{100, 3000, 100} {
		c := &DeliverCall{To: srv.ID(), Event: Event{Target: 1, Seq: uint64(i + 1), Payload: make([]byte, size)}, Done: done}
		a.Go(ctx, c)
	}
	for i := 1; i <= 3; i++ {
		c := <-done
		if c.Event.Seq != uint64(i) {
			t.Fatalf("completion %d is event %d", i, c.Event.Seq)
		}
		if i == 2 {
			wantErr(t, c.Err, ErrRemote, ErrFrameTooLarge)
			continue
		}
		if c.Err != nil || len(c.Resp.Outputs[0].Payload) != 200 {
			t.Fatalf("event %d: %v", i, c.Err)
		}
	}
	// An event too large to send is refused before it leaves.
	c := &DeliverCall{To: srv.ID(), Event: Event{Target: 1, Seq: 4, Payload: make([]byte, 5000)}}
	a.Go(ctx, c)
	wantErr(t, (<-c.Done).Err, ErrFrameTooLarge)
}

// The daemon leaves the old node and is back there before the events
// queued behind the first "moved" run: those must not be applied at the
// old node ahead of the redirected one (the server keeps answering moved
// on that stream until the client starts afresh).
func TestPipelineMovedAndBackKeepsOrder(t *testing.T) {
	ca := newCA(t)
	a, old, nu := newEndpoint(t, ca), newEndpoint(t, ca), newEndpoint(t, ca)
	oldOps := newSeqOps(old, 5)
	newOps := newSeqOps(nu, 5)
	oldOps.moveAfter(5, 40, nu.ID(), true)
	a.SetPeerAddr(old.ID(), old.Addr().String())
	a.SetPeerAddr(nu.ID(), nu.Addr().String())
	ctx := ctxTimeout(t, 20*1e9)
	const n = PipeTargetWindow
	done := make(chan *DeliverCall, n)
	for i := uint64(1); i <= n; i++ {
		goEvent(ctx, a, old.ID(), 5, i, done)
	}
	for i := uint64(1); i <= n; i++ {
		if c := <-done; c.Err != nil || c.Event.Seq != i {
			t.Fatalf("completion %d: event %d, %v", i, c.Event.Seq, c.Err)
		}
	}
	wantSeqs(t, "old node", oldOps.seqs(5), 1, 40)
	wantSeqs(t, "new node", newOps.seqs(5), 41, n)
}

// Events whose commit failed ran but may not survive a crash: their
// outputs are withheld and each fails with the commit's error.
func TestPipelineFailedCommitWithholdsOutputs(t *testing.T) {
	a, srv, ops := pipePair(t, 1)
	ctx := ctxTimeout(t, 10*1e9)
	ops.mu.Lock()
	ops.commitErr = fmt.Errorf("%w: journal disk gone", ErrPeerUnavailable)
	ops.mu.Unlock()
	done := make(chan *DeliverCall, 20)
	for i := uint64(1); i <= 20; i++ {
		goEvent(ctx, a, srv.ID(), 1, i, done)
	}
	for i := uint64(1); i <= 20; i++ {
		c := <-done
		wantErr(t, c.Err, ErrRemote, ErrPeerUnavailable)
		if len(c.Resp.Outputs) != 0 || c.Event.Seq != i {
			t.Fatalf("event %d (completion %d) came back with %d outputs", c.Event.Seq, i, len(c.Resp.Outputs))
		}
	}
	ops.mu.Lock()
	ops.commitErr = nil
	ops.mu.Unlock()
	resp, err := a.RemoteDeliver(ctx, srv.ID(), DeliverRequest{Event: Event{Target: 1, Seq: 21, Payload: []byte("ok")}})
	if err != nil || string(resp.Outputs[0].Payload) != "ok" {
		t.Fatalf("after the journal recovered: %v", err)
	}
}

// A call that asks for no links gets its outputs without them (a bare
// answer on the wire); the next call on the same stream, reusing the call,
// gets them again.
func TestPipelineNoLinksLeavesLinksOut(t *testing.T) {
	a, srv, _ := pipePair(t, 1)
	ctx := ctxTimeout(t, 20*1e9)
	done := make(chan *DeliverCall, 1)
	c := &DeliverCall{To: srv.ID(), Event: Event{Target: 1, Sender: 1, Seq: 1, Payload: []byte("one")}, Done: done, NoLinks: true}
	a.Go(ctx, c)
	<-done
	if c.Err != nil || len(c.Resp.Outputs) != 1 || string(c.Resp.Outputs[0].Payload) != "one" || len(c.Resp.Outputs[0].Link) != 0 {
		t.Fatalf("no-links call: err %v outputs %+v", c.Err, c.Resp.Outputs)
	}
	c.Event.Seq, c.Event.Payload, c.NoLinks = 2, []byte("two"), false
	a.Go(ctx, c)
	<-done
	if c.Err != nil || len(c.Resp.Outputs) != 1 || string(c.Resp.Outputs[0].Payload) != "two" || len(c.Resp.Outputs[0].Link) != chain.LinkSize {
		t.Fatalf("call with links: err %v outputs %+v", c.Err, c.Resp.Outputs)
	}
}
