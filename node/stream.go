package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/migrator"
	meshquic "github.com/wasmesh/wasmesh/transport/quic"
)

// Streaming send: one call carries many events to one daemon and yields
// their results in order. The name is resolved once per stream; events are
// pipelined (locally applied back to back and released by one shared
// journal sync; remotely many in flight); a route change is followed once
// every event in flight has answered, so events reach the daemon in the
// order they were read.

// StreamWindow bounds the events of one stream that are read but not yet
// answered: it is the pipeline's depth and the back-pressure on a client
// that sends faster than the daemon takes events.
const StreamWindow = 512

// streamRedo bounds how often one stream re-resolves its daemon for the
// same event before it gives up on it (a daemon moved to and fro faster
// than its events can follow).
const streamRedo = 4

// streamSettle bounds how long events already in flight when a client went
// away may take to answer, so that the applied count the node logs is the
// truth and not a guess.
const streamSettle = 10 * time.Second

// maxSyncBatch bounds the results one journal sync releases at once.
const maxSyncBatch = 1024

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
	local  *host.Daemon
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

// slot is one event between being read and being answered.
type slot struct {
	line int
	ev   host.Event
	res  StreamResult
	// sync: applied here, so it is released only once a journal sync
	// covers it.
	sync bool
	// tries counts the routes the event was sent along.
	tries int
	done  chan struct{} // closed when res is final
}

func (sl *slot) finish(err error) {
	sl.res.Err = err
	close(sl.done)
}

// runState is a stream's router state; only Run's goroutine touches it.
type runState struct {
	s        *Stream
	ctx      context.Context            // the sends' context: outlives the client by streamSettle
	queue    chan *slot                 // in read order, to the emitter
	calls    chan *meshquic.DeliverCall // completions; room for more than can be in flight (the window, and the slots the emitter holds)
	pending  map[*meshquic.DeliverCall]*remoteCall
	inflight int
	room     chan struct{} // the emitter took a slot off queue
	redo     []*slot       // answered "not delivered", to resend once nothing is in flight
	stopped  error
	gone     bool // the client went away: nothing more is sent
	sum      *StreamSummary
}

// Run sends every event read from events (until it is closed or ctx ends)
// and hands each result to emit in the order the events were read; emit is
// called from one goroutine at a time. A failed event fails that event
// only, except that the stream stops sending (the rest are answered "not
// sent", with ErrDaemonNotFound, so a client may resend them in order) at
// an event that could not be delivered, and, on a stream with a client id,
// at any event whose fate is unknown: sending later events first would let
// the daemon's horizon swallow a resend of it. When ctx ends or emit fails
// (the client went away), the events in flight settle, Run logs how many
// events the stream applied and returns the summary with the error.
func (s *Stream) Run(ctx context.Context, events <-chan StreamEvent, emit func(StreamResult) error) (StreamSummary, error) {
	var sum StreamSummary
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	st := &runState{s: s, ctx: sendCtx, queue: make(chan *slot, StreamWindow), calls: make(chan *meshquic.DeliverCall, 2*StreamWindow), pending: make(map[*meshquic.DeliverCall]*remoteCall, StreamWindow), room: make(chan struct{}, 1), sum: &sum}
	emitted := make(chan error, 1)
	refused := make(chan struct{}) // closed when emit first fails
	// The journal syncs run under the sends' context: events applied
	// before the client went away are made durable (and counted) all the
	// same, not answered "not durable" because the client left.
	go func() { emitted <- s.emitAll(sendCtx, st.queue, st.room, refused, emit, &sum) }()
	var runErr error
	var settle <-chan time.Time
	done := ctx.Done()
	for events != nil || st.inflight > 0 {
		in := events
		if len(st.queue) == cap(st.queue) || len(st.redo) > 0 {
			// The window is full or a route change waits for the events
			// in flight: read no more until they answer.
			in = nil
		}
		select {
		case ev, ok := <-in:
			if !ok {
				events = nil
				continue
			}
			st.dispatch(ev)
		case dc := <-st.calls:
			c := st.pending[dc]
			delete(st.pending, dc)
			st.answered(c)
		case <-st.room:
		case <-done:
			// The client went away: read nothing more, let what is in
			// flight answer (for an exact applied count), within a bound.
			runErr, done, refused, events, st.gone = ctx.Err(), nil, nil, nil, true
			settle = time.After(streamSettle)
		case <-refused:
			// Its answers cannot be written: the same, without a context
			// error (emit's own is returned).
			done, refused, events, st.gone = nil, nil, nil, true
			settle = time.After(streamSettle)
		case <-settle:
			cancelSends()
			settle = nil
		}
		if len(st.redo) > 0 && st.inflight == 0 {
			st.reroute()
		}
	}
	close(st.queue)
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

// dispatch sends one event read from the client (or answers it at once).
func (st *runState) dispatch(ev StreamEvent) {
	s := st.s
	sl := &slot{line: ev.Line, done: make(chan struct{})}
	sl.res.Line, sl.res.EventID = ev.Line, ev.EventID
	st.queue <- sl // never blocks: Run keeps the window below its capacity
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
		sl.ev = host.Event{Sender: s.sender, Seq: ev.EventID, Payload: ev.Payload, Once: true}
	} else {
		sl.ev = host.Event{Seq: s.n.eventSeq.Add(1), Payload: ev.Payload}
	}
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
	if st.inflight == 0 {
		// Nothing in flight, so a newer route cannot overtake an older
		// event: take the one the transport learnt from "moved" answers.
		if r, ok := s.n.ep.Routes().Lookup(s.origin); ok && r.Node != s.n.id && r.Node != s.peer.id {
			s.peer = peerRef{id: r.Node, name: s.n.peerName(r.Node)}
		}
	}
	st.inflight++
	s.n.goDeliver(st.ctx, &remoteCall{
		DeliverCall: meshquic.DeliverCall{
			To:    s.peer.id,
			Event: meshquic.Event{Target: s.origin, Sender: sl.ev.Sender, Seq: sl.ev.Seq, Payload: sl.ev.Payload, Once: sl.ev.Once},
			Done:  st.calls,
		},
		slot: sl,
		peer: s.peer,
	}, st.pending)
}

// applyLocal runs sl on the local daemon; its result waits in the queue for
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
	outs, err := d.Deliver(st.ctx, sl.ev)
	n.metrics.eventLatency.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, host.ErrDuplicateEvent):
		// The first attempt may still wait for its fsync: this answer is
		// released by the same kind of sync.
		sl.sync = n.wal != nil
		sl.res.Delivery = Delivery{Daemon: d.ID(), Node: n.name, Duplicate: true}
		st.sum.Duplicates++
		close(sl.done)
	case errors.Is(err, host.ErrDaemonStopped), errors.Is(err, host.ErrDaemonNotFound),
		errors.Is(err, meshquic.ErrMoved), errors.Is(err, migrator.ErrNotDelivered):
		// It left this node (a migration) before the event ran, or the
		// migration forwarded it to a node that no longer had it.
		n.metrics.eventsFailed.Inc()
		st.notDelivered(sl, wrap(ErrDaemonNotFound, err))
	case err != nil:
		n.metrics.eventsFailed.Inc()
		var ee *host.EventError
		if errors.As(err, &ee) || errors.Is(err, host.ErrDaemonFailed) {
			st.fail(sl, wrap(ErrEventFailed, err))
		} else {
			st.fail(sl, fmt.Errorf("deliver to %s: %w", d.ID(), err))
		}
	default:
		n.metrics.eventsProcessed.Inc()
		res := Delivery{Daemon: d.ID(), Node: n.name, Outputs: make([][]byte, len(outs))}
		if !s.noLinks {
			res.Links = make([][]byte, len(outs))
		}
		for i, o := range outs {
			res.Outputs[i] = o.Payload
			if !s.noLinks {
				res.Links[i] = o.Link.AppendBinary(nil)
			}
		}
		sl.sync = n.wal != nil
		sl.res.Delivery = res
		st.sum.Applied++
		close(sl.done)
	}
}

// answered takes a remote event's answer.
func (st *runState) answered(c *remoteCall) {
	st.inflight--
	sl, n := c.slot, st.s.n
	if c.To != c.peer.id {
		// The transport followed a "moved" answer: name where it ran.
		c.peer = peerRef{id: c.To, name: n.peerName(c.To)}
	}
	var me *meshquic.MovedError
	switch {
	case errors.As(c.Err, &me):
		// It moved here while the event was on its way (or further than
		// the transport follows).
		st.notDelivered(sl, fmt.Errorf("%w: daemon %s moved to node %s", ErrDaemonNotFound, st.s.Daemon(), n.peerName(me.To)))
		return
	case c.Err != nil:
		err := fromRemote(c.Err, c.peer.String())
		if errors.Is(err, ErrDaemonNotFound) || errors.Is(c.Err, meshquic.ErrUnknownPeer) || errors.Is(c.Err, migrator.ErrNotDelivered) {
			st.notDelivered(sl, err)
			return
		}
		st.fail(sl, err)
		return
	}
	res := Delivery{Daemon: st.s.Daemon(), Node: c.peer.String(), Outputs: make([][]byte, len(c.Resp.Outputs)), Links: make([][]byte, len(c.Resp.Outputs)), Duplicate: c.Resp.Duplicate}
	for i, o := range c.Resp.Outputs {
		res.Outputs[i] = o.Payload
		res.Links[i] = o.Link
	}
	if res.Duplicate {
		st.sum.Duplicates++
	} else {
		st.sum.Applied++
	}
	sl.res.Delivery = res
	close(sl.done)
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

// emitAll hands results to emit in order. A local result is released only
// once a journal sync covers it; one sync covers every result applied
// before it, so a stream pays one fsync per batch, not per event.
func (s *Stream) emitAll(ctx context.Context, queue <-chan *slot, room chan<- struct{}, refused chan<- struct{}, emit func(StreamResult) error, sum *StreamSummary) error {
	var (
		failed error
		carry  *slot
		batch  []*slot
	)
	out := func(sl *slot, more bool) {
		if failed != nil {
			return
		}
		sum.Events++
		if sl.res.Err != nil {
			sum.Failed++
		}
		sl.res.More = more
		if err := emit(sl.res); err != nil {
			failed = err
			close(refused)
		}
	}
	take := func() (*slot, bool) {
		sl, ok := <-queue
		select {
		case room <- struct{}{}:
		default:
		}
		return sl, ok
	}
	// peek takes the next slot into carry if one is queued, and reports
	// whether it is answered already.
	peek := func() bool {
		if carry == nil && len(queue) > 0 {
			if t, ok := take(); ok {
				carry = t
			}
		}
		return carry != nil && isDone(carry) && !carry.sync
	}
	for {
		sl := carry
		carry = nil
		if sl == nil {
			var ok bool
			if sl, ok = take(); !ok {
				return failed
			}
		}
		<-sl.done
		if !sl.sync {
			out(sl, peek())
			continue
		}
		batch = append(batch[:0], sl)
	extend:
		for len(batch) < maxSyncBatch && len(queue) > 0 {
			t, ok := take()
			switch {
			case !ok:
				break extend
			case !isDone(t):
				carry = t
				break extend
			}
			batch = append(batch, t)
		}
		// Every slot in batch was applied before this call: one sync
		// covers them all.
		if err := s.n.wal.Sync(ctx); err != nil {
			for _, b := range batch {
				if b.sync && b.res.Err == nil {
					b.res.Delivery = Delivery{}
					b.res.Err = fmt.Errorf("%w: event ran but is not durable (its outputs are withheld): %w", ErrUnavailable, err)
				}
			}
		}
		for i, b := range batch {
			out(b, i < len(batch)-1 || peek())
		}
	}
}

func isDone(sl *slot) bool {
	select {
	case <-sl.done:
		return true
	default:
		return false
	}
}
