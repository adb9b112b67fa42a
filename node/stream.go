package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// Streaming send: one call carries many events to one daemon and yields
// their results in order. The name is resolved once per stream; events are
// pipelined (locally applied back to back and released by one shared
// journal sync; remotely many in flight); a route change is followed once
// every event in flight has answered, so events reach the daemon in the
// order they were read.

// StreamWindow and StreamWindowBytes bound the events of one stream (and
// their payload bytes) that are read but not yet answered: they are the
// pipeline's depth and the back-pressure on a client that sends faster
// than the daemon takes events. The depth covers a round trip to another
// node plus a journal sync at full speed.
const (
	StreamWindow      = 4096
	StreamWindowBytes = 8 << 20
)

// streamRedo bounds how often one stream re-resolves its daemon for the
// same event before it gives up on it (a daemon moved to and fro faster
// than its events can follow).
const streamRedo = 4

// streamSettle bounds how long events already in flight when a client went
// away may take to answer, so that the applied count the node logs is the
// truth and not a guess.
const streamSettle = 10 * time.Second

// StreamEvent is one event of a stream.
type StreamEvent struct {
	// Line is the event's line number in the client's input, echoed in its
	// result so a client can tell which event an answer is for.
	Line    int
	Payload []byte
	// EventID is the exactly-once id under the stream's client id
	// (OpenStream); it must be 0 on a stream without one.
	EventID uint64
	// Err, when set, is why the line could not be read as an event: it
	// fails with this error, in its place in the order, and is not sent.
	Err error
}

// StreamResult is one event's answer.
type StreamResult struct {
	Line    int
	EventID uint64 // the event's client event id, if it had one
	Delivery
	// Err is the event's failure; Delivery is empty then.
	Err error
	// More: the next result is ready too, so a writer may hold this one
	// back until it has written that (one flush for a burst, not one per
	// result); without More it should flush now.
	More bool
}

// StreamSummary counts what a stream did.
type StreamSummary struct {
	Events     int // results handed to emit (or that emit refused)
	Applied    int // events the daemon applied (duplicates not included)
	Duplicates int // exactly-once events the daemon had already applied
	Failed     int // results that carry an error
	// Stopped is why the stream stopped sending (every later event was
	// answered "not sent"); nil when every event was tried.
	Stopped error
}

// Stream is an open stream to one daemon (OpenStream).
type Stream struct {
	n      *Node
	ref    string
	origin uint64
	sender uint64 // the client's sender id; 0 for anonymous events
	local  *engine.Daemon
	peer   peerRef // where the daemon is when local is nil
	// noLinks: the client does not want the outputs' causal links, so a
	// local event does not encode them.
	noLinks bool
}

// SkipLinks leaves the outputs' causal links out of local results (a
// remote node sends them anyway); call it before Run.
func (s *Stream) SkipLinks() { s.noLinks = true }

// OpenStream resolves ref (a daemon id or name) once for a stream of events
// and returns the stream; client, when set, makes every event exactly-once
// under its StreamEvent.EventID (see SendOnce). Errors are those of Send for
// a daemon that cannot be found.
func (n *Node) OpenStream(ctx context.Context, ref, client string) (*Stream, error) {
	s := &Stream{n: n, ref: ref}
	if client != "" {
		sender, err := ClientSender(client)
		if err != nil {
			return nil, err
		}
		s.sender = sender
	}
	if d, ok := n.findLocal(ref); ok {
		s.origin, s.local = d.Origin(), d
		return s, nil
	}
	if f, ok := n.findFailed(ref); ok {
		return nil, f.refusal("send")
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return nil, err
	}
	if s.origin, err = abi.ParseOrigin(loc.info.ID); err != nil {
		return nil, err
	}
	s.point(loc)
	return s, nil
}

// Daemon is the id of the daemon the stream's reference resolved to.
func (s *Stream) Daemon() string { return abi.FormatOrigin(s.origin) }

// point aims the stream at loc.
func (s *Stream) point(loc location) {
	if d, ok := s.n.localAt(loc); ok {
		s.local = d
		return
	}
	s.local, s.peer = nil, loc.node
}

// resolve finds the stream's daemon again, by id: the stream stays with the
// daemon its reference first named even if the name is taken over.
func (s *Stream) resolve(ctx context.Context) error {
	id := abi.FormatOrigin(s.origin)
	if d, ok := s.n.findLocal(id); ok {
		s.local = d
		return nil
	}
	loc, err := s.n.locate(ctx, id)
	if err != nil {
		return err
	}
	s.point(loc)
	return nil
}

// Inside a stream, results pass from the router (Run's goroutine) to the
// writer (emitAll) through a ring of slots and two counters, not a channel
// operation per event: the router publishes how many slots from the start
// are answered, the writer how many it has written and handed back. Each
// side wakes the other at most once per change it publishes, so a burst of
// events costs one handoff, not one per event.

// slot is one event between being read and being answered. Slots live in
// the stream's ring and are reused, with their buffers, once written.
type slot struct {
	line int
	ev   engine.Event
	res  StreamResult
	// sync: applied here, so it is released only once a journal sync
	// covers it.
	sync bool
	// tries counts the routes the event was sent along.
	tries int
	// final: res is the answer. Only the router writes a slot; the writer
	// reads slots below the published count.
	final bool

	call    meshquic.DeliverCall // a remote attempt (its buffers reused)
	peer    peerRef              // where call went, for messages
	outs    engine.Outputs       // a local attempt's outputs
	outputs [][]byte             // backing of res.Outputs
	links   [][]byte             // backing of res.Links
	linkBuf []byte
}

func (sl *slot) finish(err error) {
	sl.res.Err = err
	sl.final = true
}

// ring is a stream's window of slots shared by the router and the writer.
type ring struct {
	slots []*slot
	// answered: every slot numbered below it is final (router stores).
	answered atomic.Uint64
	// written: every slot numbered below it was written and may be reused
	// (writer stores).
	written atomic.Uint64
	// over: the router has taken its last slot (set after answered).
	over  atomic.Bool
	ready chan struct{} // router → writer: answered moved or over was set
	room  chan struct{} // writer → router: written moved
}

func (r *ring) at(i uint64) *slot { return r.slots[i%uint64(len(r.slots))] }

// wake leaves a token on c unless one waits there already.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// runState is a stream's router state; only Run's goroutine touches it.
type runState struct {
	s     *Stream
	ctx   context.Context // the sends' context: outlives the client by streamSettle
	r     *ring
	taken uint64                     // slots numbered below it are in use
	freed uint64                     // slots below it were written and their bytes given back
	bytes int                        // payload bytes of the slots in use
	done  uint64                     // answered, as the router last published it
	calls chan *meshquic.DeliverCall // completions; room for every slot
	// flight holds the remote slots in flight in the order they were sent,
	// which is the order the transport answers calls to one daemon.
	flight   []*slot
	redo     []*slot       // answered "not delivered", to resend once nothing is in flight
	held     []StreamEvent // read, waiting for room in the window
	stopped  error
	gone     bool // the client went away: nothing more is sent
	sum      *StreamSummary
	daemonID string
}

// Run sends every event read from events (batches, until it is closed or
// ctx ends) and hands each result to emit in the order the events were
// read; emit is called from one goroutine at a time and must not keep the
// result's slices after it returns. A failed event fails that event
// only, except that the stream stops sending (the rest are answered "not
// sent", with ErrDaemonNotFound, so a client may resend them in order) at
// an event that could not be delivered, and, on a stream with a client id,
// at any event whose fate is unknown: sending later events first would let
// the daemon's horizon swallow a resend of it. When ctx ends or emit fails
// (the client went away), the events in flight settle, Run logs how many
// events the stream applied and returns the summary with the error.
func (s *Stream) Run(ctx context.Context, events <-chan []StreamEvent, emit func(StreamResult) error) (StreamSummary, error) {
	var sum StreamSummary
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	r := &ring{slots: make([]*slot, StreamWindow), ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	st := &runState{s: s, ctx: sendCtx, r: r, calls: make(chan *meshquic.DeliverCall, StreamWindow), sum: &sum, daemonID: s.Daemon()}
	emitted := make(chan error, 1)
	refused := make(chan struct{}) // closed when emit first fails
	// The journal syncs run under the sends' context: events applied
	// before the client went away are made durable (and counted) all the
	// same, not answered "not durable" because the client left.
	go func() { emitted <- s.emitAll(sendCtx, r, refused, emit, &sum) }()
	var runErr error
	var settle <-chan time.Time
	done := ctx.Done()
	for events != nil || len(st.flight) > 0 || len(st.held) > 0 {
		st.advance()
		in := events
		if len(st.held) > 0 || len(st.redo) > 0 {
			// The window is full, or a route change waits for the events
			// in flight: read no more until they answer.
			in = nil
		}
		select {
		case batch, ok := <-in:
			if !ok {
				events = nil
				continue
			}
			st.held = batch
		case dc := <-st.calls:
			st.answered(dc)
			for more := true; more; {
				select {
				case dc = <-st.calls:
					st.answered(dc)
				default:
					more = false
				}
			}
		case <-r.room:
		case <-done:
			// The client went away: read nothing more, let what is in
			// flight answer (for an exact applied count), within a bound.
			runErr, done, refused, events, st.gone, st.held = ctx.Err(), nil, nil, nil, true, nil
			settle = time.After(streamSettle)
		case <-refused:
			// Its answers cannot be written: the same, without a context
			// error (emit's own is returned).
			done, refused, events, st.gone, st.held = nil, nil, nil, true, nil
			settle = time.After(streamSettle)
		case <-settle:
			cancelSends()
			settle = nil
		}
		st.advance()
	}
	r.over.Store(true)
	wake(r.ready)
	if err := <-emitted; err != nil && runErr == nil {
		runErr = err
	}
	sum.Stopped = st.stopped
	if runErr != nil {
		s.n.log.Info("event stream ended early", "daemon", s.Daemon(), "err", runErr,
			"applied", sum.Applied, "duplicates", sum.Duplicates, "results_written", sum.Events)
	}
	return sum, runErr
}

// advance sends what can be sent now: held events while the window has
// room, and, once nothing is in flight, the events to resend after a route
// change (before any later event); then it publishes the answers.
func (st *runState) advance() {
	for {
		st.feed()
		if len(st.redo) == 0 || len(st.flight) > 0 {
			break
		}
		st.reroute()
	}
	st.publish()
}

// feed dispatches held events while the window has room and no event
// waits to be resent.
func (st *runState) feed() {
	for w := st.r.written.Load(); st.freed < w; st.freed++ {
		st.bytes -= len(st.r.at(st.freed).ev.Payload)
	}
	for len(st.held) > 0 && len(st.redo) == 0 && st.taken-st.freed < uint64(len(st.r.slots)) {
		if k := len(st.held[0].Payload); st.bytes > 0 && st.bytes+k > StreamWindowBytes {
			return
		}
		st.dispatch(st.held[0])
		st.held[0] = StreamEvent{}
		st.held = st.held[1:]
	}
}

// publish tells the writer how many slots from the start are answered.
func (st *runState) publish() {
	d := st.done
	for d < st.taken && st.r.at(d).final {
		d++
	}
	if d != st.done {
		st.done = d
		st.r.answered.Store(d)
		wake(st.r.ready)
	}
}

// take returns the next free slot of the ring, reset for line.
func (st *runState) take(line int, id uint64) *slot {
	i := st.taken % uint64(len(st.r.slots))
	sl := st.r.slots[i]
	if sl == nil {
		sl = &slot{}
		st.r.slots[i] = sl
	}
	st.taken++
	sl.line, sl.sync, sl.tries, sl.final = line, false, 0, false
	sl.ev = engine.Event{}
	sl.res = StreamResult{Line: line, EventID: id}
	return sl
}

// dispatch sends one event read from the client (or answers it at once).
func (st *runState) dispatch(ev StreamEvent) {
	s := st.s
	sl := st.take(ev.Line, ev.EventID)
	switch {
	case ev.Err != nil:
		sl.finish(ev.Err)
		return
	case st.stopped != nil:
		sl.finish(fmt.Errorf("%w: event not sent: the stream stopped before it: %w", ErrDaemonNotFound, st.stopped))
		return
	case s.sender != 0 && ev.EventID == 0:
		sl.finish(fmt.Errorf("%w: an event of a stream with a client id needs an event id (from 1)", ErrBadRequest))
		return
	case s.sender == 0 && ev.EventID != 0:
		sl.finish(fmt.Errorf("%w: an event id needs a client id", ErrBadRequest))
		return
	}
	if s.sender != 0 {
		sl.ev = engine.Event{Sender: s.sender, Seq: ev.EventID, Payload: ev.Payload, Once: true}
	} else {
		sl.ev = engine.Event{Seq: s.n.eventSeq.Add(1), Payload: ev.Payload}
	}
	st.bytes += len(ev.Payload)
	st.send(sl)
}

// send puts sl on the stream's current route.
func (st *runState) send(sl *slot) {
	s := st.s
	sl.tries++
	if s.local != nil {
		st.applyLocal(sl)
		return
	}
	if len(st.flight) == 0 {
		// Nothing in flight, so a newer route cannot overtake an older
		// event: take the one the transport learnt from "moved" answers.
		if r, ok := s.n.ep.Routes().Lookup(s.origin); ok && r.Node != s.n.id && r.Node != s.peer.id {
			s.peer = peerRef{id: r.Node, name: s.n.peerName(r.Node)}
		}
	}
	st.flight = append(st.flight, sl)
	sl.peer = s.peer
	c := &sl.call
	c.To = s.peer.id
	c.Event = meshquic.Event{Target: s.origin, Sender: sl.ev.Sender, Seq: sl.ev.Seq, Payload: sl.ev.Payload, Once: sl.ev.Once}
	c.Done = st.calls
	c.NoLinks = s.noLinks
	s.n.ep.Go(st.ctx, c)
}

// applyLocal runs sl on the local daemon; its result waits in the ring for
// the journal sync that makes it durable (emitAll).
func (st *runState) applyLocal(sl *slot) {
	s, n := st.s, st.s.n
	d := s.local
	if n.wal != nil {
		if err := n.wal.Err(); err != nil {
			st.fail(sl, fmt.Errorf("%w: this node cannot make events durable: %w", ErrUnavailable, err))
			return
		}
	}
	start := time.Now()
	err := d.DeliverInto(st.ctx, sl.ev, &sl.outs)
	n.metrics.eventLatency.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, engine.ErrDuplicateEvent):
		// The first attempt may still wait for its fsync: this answer is
		// released by the same kind of sync.
		sl.sync = n.wal != nil
		sl.res.Delivery = Delivery{Daemon: st.daemonID, Node: n.name, Duplicate: true}
		st.sum.Duplicates++
		sl.final = true
	case errors.Is(err, engine.ErrDaemonStopped), errors.Is(err, engine.ErrDaemonNotFound),
		errors.Is(err, meshquic.ErrMoved), errors.Is(err, driver.ErrNotDelivered):
		// It left this node (a migration) before the event ran, or the
		// migration forwarded it to a node that no longer had it.
		n.metrics.eventsFailed.Inc()
		st.notDelivered(sl, wrap(ErrDaemonNotFound, err))
	case err != nil:
		n.metrics.eventsFailed.Inc()
		var ee *engine.EventError
		if errors.As(err, &ee) || errors.Is(err, engine.ErrDaemonFailed) {
			st.fail(sl, wrap(ErrEventFailed, err))
		} else {
			st.fail(sl, fmt.Errorf("deliver to %s: %w", d.ID(), err))
		}
	default:
		n.metrics.eventsProcessed.Inc()
		items := sl.outs.Items
		sl.outputs = sl.outputs[:0]
		for _, o := range items {
			sl.outputs = append(sl.outputs, o.Payload)
		}
		res := Delivery{Daemon: st.daemonID, Node: n.name, Outputs: sl.outputs}
		if !s.noLinks {
			// Encode every link first: the buffer may move while it grows.
			sl.linkBuf = sl.linkBuf[:0]
			for _, o := range items {
				sl.linkBuf = o.Link.AppendBinary(sl.linkBuf)
			}
			sl.links = sl.links[:0]
			off := 0
			for range items {
				sl.links = append(sl.links, sl.linkBuf[off:off+chain.LinkSize:off+chain.LinkSize])
				off += chain.LinkSize
			}
			res.Links = sl.links
		}
		sl.sync = n.wal != nil
		sl.res.Delivery = res
		st.sum.Applied++
		sl.final = true
	}
}

// answered takes a remote event's answer.
func (st *runState) answered(dc *meshquic.DeliverCall) {
	var sl *slot
	for i, f := range st.flight {
		// The transport answers in send order, so this is the first one
		// unless a call failed on its own (a context error).
		if &f.call == dc {
			sl = f
			// Drop it from the front (the earlier ones move up one):
			// no copy at all in the usual case.
			copy(st.flight[1:i+1], st.flight[:i])
			st.flight[0] = nil
			st.flight = st.flight[1:]
			break
		}
	}
	if sl == nil {
		return // not this stream's: cannot happen
	}
	n := st.s.n
	if dc.To != sl.peer.id {
		// The transport followed a "moved" answer: name where it ran.
		sl.peer = peerRef{id: dc.To, name: n.peerName(dc.To)}
	}
	if dc.Err != nil {
		st.remoteFailed(sl, dc.Err)
		return
	}
	sl.outputs, sl.links = sl.outputs[:0], sl.links[:0]
	for _, o := range dc.Resp.Outputs {
		sl.outputs = append(sl.outputs, o.Payload)
		sl.links = append(sl.links, o.Link)
	}
	sl.res.Delivery = Delivery{Daemon: st.daemonID, Node: sl.peer.String(), Outputs: sl.outputs, Links: sl.links, Duplicate: dc.Resp.Duplicate}
	if dc.Resp.Duplicate {
		st.sum.Duplicates++
	} else {
		st.sum.Applied++
	}
	sl.final = true
}

// remoteFailed takes a remote event's failure. (Apart from answered: the
// errors.As target would otherwise be allocated for every answer.)
func (st *runState) remoteFailed(sl *slot, cerr error) {
	n := st.s.n
	var me *meshquic.MovedError
	if errors.As(cerr, &me) {
		// It moved here while the event was on its way (or further than
		// the transport follows).
		st.notDelivered(sl, fmt.Errorf("%w: daemon %s moved to node %s", ErrDaemonNotFound, st.daemonID, n.peerName(me.To)))
		return
	}
	err := fromRemote(cerr, sl.peer.String())
	if errors.Is(err, ErrDaemonNotFound) || errors.Is(cerr, meshquic.ErrUnknownPeer) || errors.Is(cerr, driver.ErrNotDelivered) {
		st.notDelivered(sl, err)
		return
	}
	st.fail(sl, err)
}

// fail answers sl with err. On a stream with a client id, an error that
// does not say what became of the event stops the stream (see Run).
func (st *runState) fail(sl *slot, err error) {
	if st.s.sender != 0 && st.stopped == nil && !settled(err) {
		st.stopped = fmt.Errorf("line %d: %w", sl.line, err)
	}
	sl.finish(err)
}

// settled reports whether err says for sure the event was not applied: it
// failed in the daemon (and was rolled back) or was refused as input.
func settled(err error) bool {
	return errors.Is(err, ErrEventFailed) || errors.Is(err, ErrBadRequest) || errors.Is(err, ErrTooLarge)
}

// notDelivered handles an event that surely did not reach the daemon: it
// is sent again once the route is found anew, unless it has been tried on
// too many routes already.
func (st *runState) notDelivered(sl *slot, err error) {
	if sl.tries >= streamRedo || st.stopped != nil {
		if st.stopped == nil {
			st.stopped = fmt.Errorf("line %d: %w", sl.line, err)
		}
		sl.finish(err)
		return
	}
	sl.res.Err = err // kept if the route cannot be found again
	st.redo = append(st.redo, sl)
}

// reroute finds the daemon again once nothing is in flight, and resends the
// events that were not delivered, in their order.
func (st *runState) reroute() {
	redo := st.redo
	st.redo = nil
	if st.gone {
		for _, sl := range redo {
			sl.finish(sl.res.Err)
		}
		return
	}
	if err := st.s.resolve(st.ctx); err != nil {
		if st.stopped == nil {
			st.stopped = fmt.Errorf("line %d: %w", redo[0].line, err)
		}
		for _, sl := range redo {
			sl.finish(err)
		}
		return
	}
	for _, sl := range redo {
		if st.gone && st.stopped == nil {
			st.stopped = fmt.Errorf("line %d: the client went away", sl.line)
		}
		if st.stopped != nil {
			sl.finish(fmt.Errorf("%w: event not sent: the stream stopped before it: %w", ErrDaemonNotFound, st.stopped))
			continue
		}
		sl.res.Err = nil
		st.send(sl)
	}
}

// emitAll hands results to emit in order, as the router publishes them. A
// local result is released only once a journal sync covers it; one sync
// covers every result applied before it, so a stream pays one fsync per
// burst, not per event.
func (s *Stream) emitAll(ctx context.Context, r *ring, refused chan<- struct{}, emit func(StreamResult) error, sum *StreamSummary) error {
	var failed error
	next := uint64(0)
	for {
		hi := r.answered.Load()
		if hi == next {
			if r.over.Load() && r.answered.Load() == next {
				return failed
			}
			<-r.ready
			continue
		}
		sync := false
		for i := next; i < hi; i++ {
			if r.at(i).sync {
				sync = true
				break
			}
		}
		// Every slot below hi was applied before it was published: one
		// sync covers them all.
		if sync {
			if err := s.n.wal.Sync(ctx); err != nil {
				for i := next; i < hi; i++ {
					if b := r.at(i); b.sync && b.res.Err == nil {
						b.res.Delivery = Delivery{}
						b.res.Err = fmt.Errorf("%w: event ran but is not durable (its outputs are withheld): %w", ErrUnavailable, err)
					}
				}
			}
		}
		for i := next; i < hi; i++ {
			if failed != nil {
				break
			}
			sl := r.at(i)
			sum.Events++
			if sl.res.Err != nil {
				sum.Failed++
			}
			sl.res.More = i+1 < hi || r.answered.Load() > hi
			if err := emit(sl.res); err != nil {
				failed = err
				close(refused)
			}
		}
		next = hi
		r.written.Store(hi)
		wake(r.room)
	}
}
