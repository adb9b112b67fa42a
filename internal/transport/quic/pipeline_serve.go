package meshquic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// PipelineOps is what a node may add to LocalOps so that pipelined
// delivery makes a run of events durable together: Apply runs one event
// without waiting for it to be durable, Commit waits until every event
// applied so far is. Without it the server falls back to LocalOps.Deliver
// per event. Apply reports errors as Deliver does (ErrNotHosted for a
// daemon not here, Coder errors for the rest) and appends the outputs to
// resp.Outputs, which arrives empty but with the capacity (and, in each
// element, the Link and Payload buffers) of an earlier use, so an Apply
// that appends into those allocates nothing; what it puts there must stay
// valid until the answer is sent, after Commit. ev.Payload aliases the
// received frame and is valid only during the call (as it is for
// LocalOps.Deliver on this path): copy what must outlive it.
type PipelineOps interface {
	Apply(ctx context.Context, ev Event, resp *DeliverResponse) error
	Commit(ctx context.Context) error
}

// Server-side bounds per pipeline stream. A well-behaved client stays
// within the per-target window by construction; these stop one that does
// not from making the server hold unbounded memory.
const (
	// pipeRunMax bounds the events one daemon runs before one commit.
	pipeRunMax       = 128
	pipeStreamEvents = 2 * PipePeerCalls
	pipeStreamBytes  = 4 * PipePeerBytes
)

// ErrOverloaded: a pipelined event beyond the per-daemon window or the
// stream's bounds; it was refused without running.
var ErrOverloaded = errors.New("meshquic: too many events in flight")

// CodeOverloaded is ErrOverloaded's wire code.
const CodeOverloaded = "overloaded"

// inFrame is one received batch frame; its events alias it, so it goes
// back to the pool only once every one of them has been answered.
type inFrame struct {
	b    []byte
	refs atomic.Int32
	pool *sync.Pool
	srv  *pipeServer
}

func (f *inFrame) release() {
	if f.refs.Add(-1) == 0 {
		f.srv.heldBytes.Add(-int64(cap(f.b)))
		if cap(f.b) <= 2*pipeBatchBytes {
			f.pool.Put(f)
		}
	}
}

type srvEvent struct {
	pipeEvent
	frame *inFrame
}

// srvTarget is one daemon's FIFO on one stream. Two stages, each run by at
// most one goroutine: the worker applies queued events in rounds, the
// committer makes finished rounds durable together and answers them, in
// order, while the worker goes on applying: one fsync then covers what
// arrived during the previous one.
type srvTarget struct {
	q          []srvEvent
	running    bool // a worker is applying
	committing bool // a committer is committing and answering
	// outstanding counts events queued or in rounds not yet answered:
	// what the client's per-daemon window bounds.
	outstanding int
	// sticky: once a daemon answered "moved" on this stream, every later
	// event for it answers the same until the client starts afresh (it
	// holds new events while these are in flight, and resends them in
	// order at the new home): a daemon moving back meanwhile must not let
	// a later event overtake an earlier one.
	sticky *MovedError
	done   []*srvRound // applied, waiting for commit and answer
	spare  []*srvRound
	free   []*srvRound
}

// srvRound is one round of a daemon's events with their results.
type srvRound struct {
	events  []srvEvent
	resps   []DeliverResponse
	errs    []error
	applied int
}

// pipeServer serves one SubDeliverPipe stream.
type pipeServer struct {
	e    *Endpoint
	ops  LocalOps
	pops PipelineOps
	s    *Stream
	ctx  context.Context

	mu      sync.Mutex
	targets map[uint64]*srvTarget
	// idle keeps finished targets' buffers for the next daemon to start,
	// so a daemon whose queue keeps draining does not reallocate them.
	idle    []*srvTarget
	queued  int
	workers sync.WaitGroup

	heldBytes atomic.Int64
	frames    sync.Pool

	wmu   sync.Mutex
	out   frameBuf
	spare []byte
	kick  chan struct{}
}

func (e *Endpoint) servePipeline(ops LocalOps) StreamHandler {
	pops, _ := ops.(PipelineOps)
	return func(ctx context.Context, s *Stream) error {
		ps := &pipeServer{e: e, ops: ops, pops: pops, s: s, ctx: ctx,
			targets: make(map[uint64]*srvTarget),
			out:     newFrameBuf(pipeTypeResults, pipeBatchBytes),
			kick:    make(chan struct{}, 1)}
		ps.frames.New = func() any { return &inFrame{pool: &ps.frames, srv: ps} }
		wdone := make(chan struct{})
		stopw := make(chan struct{})
		go func() {
			defer close(wdone)
			ps.writer(stopw)
		}()
		err := ps.read()
		// Answer what was taken before the stream ended (a clean close of
		// the client's side still wants its answers), then stop writing.
		ps.workers.Wait()
		close(stopw)
		<-wdone
		if errors.Is(err, errStreamEnded) {
			return nil
		}
		return err
	}
}

var errStreamEnded = errors.New("pipeline stream ended")

// read takes event batches off the stream and queues each event on its
// daemon's FIFO; it never blocks on a daemon.
func (ps *pipeServer) read() error {
	var evs []pipeEvent
	for {
		f := ps.frames.Get().(*inFrame)
		frame, err := ReadFrame(ps.s.qs, f.b[:0], ps.s.maxFrame)
		if err != nil {
			ps.frames.Put(f)
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrTruncatedFrame) {
				return err
			}
			return errStreamEnded
		}
		f.b = frame
		kind, body, err := splitFrame(frame)
		if err == nil && kind != kindData {
			err = fmt.Errorf("%w: frame kind %d on the pipeline", ErrMalformed, kind)
		}
		if err == nil {
			evs, err = decodeEventBatch(body, evs[:0])
		}
		if err != nil {
			return err
		}
		over := ps.heldBytes.Add(int64(cap(frame))) > pipeStreamBytes
		f.refs.Store(int32(len(evs)) + 1)
		ps.mu.Lock()
		for i := range evs {
			ps.queueLocked(srvEvent{pipeEvent: evs[i], frame: f}, over)
		}
		ps.mu.Unlock()
		clear(evs)
		f.release()
	}
}

func (ps *pipeServer) queueLocked(ev srvEvent, over bool) {
	t := ps.targets[ev.ev.Target]
	if t == nil {
		if k := len(ps.idle); k > 0 {
			t = ps.idle[k-1]
			ps.idle = ps.idle[:k-1]
		} else {
			t = &srvTarget{}
		}
		ps.targets[ev.ev.Target] = t
	}
	if over || t.outstanding >= PipeTargetWindow || ps.queued >= pipeStreamEvents {
		ps.answer(ev.id, nil, fmt.Errorf("%w: more than %d events queued for daemon %016x on this connection", ErrOverloaded, PipeTargetWindow, ev.ev.Target))
		ev.frame.release()
		ps.maybeRetireLocked(ev.ev.Target, t)
		return
	}
	t.q = append(t.q, ev)
	t.outstanding++
	ps.queued++
	if !t.running {
		t.running = true
		ps.workers.Add(1)
		go ps.work(ev.ev.Target, t)
	}
}

// maybeRetireLocked forgets a target with nothing left to do, keeping its
// buffers for the next daemon to start.
func (ps *pipeServer) maybeRetireLocked(target uint64, t *srvTarget) {
	if t.running || t.committing || t.outstanding > 0 || t.sticky != nil {
		return
	}
	delete(ps.targets, target)
	if len(ps.idle) < 64 {
		ps.idle = append(ps.idle, t)
	}
}

// work applies one daemon's queued events, at most pipeRunMax per round
// (so the first answers of a long queue need not wait for all of it), and
// hands each round to the committer. It ends when the queue is empty.
func (ps *pipeServer) work(target uint64, t *srvTarget) {
	defer ps.workers.Done()
	for {
		ps.mu.Lock()
		if len(t.q) == 0 {
			t.running = false
			ps.maybeRetireLocked(target, t)
			ps.mu.Unlock()
			return
		}
		var r *srvRound
		if k := len(t.free); k > 0 {
			r = t.free[k-1]
			t.free = t.free[:k-1]
		} else {
			r = &srvRound{}
		}
		k := min(len(t.q), pipeRunMax)
		r.events = append(r.events[:0], t.q[:k]...)
		n := copy(t.q, t.q[k:])
		clear(t.q[n:])
		t.q = t.q[:n]
		sticky := t.sticky
		ps.mu.Unlock()

		sticky = ps.apply(r, sticky)

		ps.mu.Lock()
		t.sticky = sticky
		t.done = append(t.done, r)
		if !t.committing {
			t.committing = true
			ps.workers.Add(1)
			go ps.commit(target, t)
		}
		ps.mu.Unlock()
	}
}

// apply runs a round's events and records their results.
func (ps *pipeServer) apply(r *srvRound, sticky *MovedError) *MovedError {
	n := len(r.events)
	if cap(r.resps) < n {
		r.resps = make([]DeliverResponse, n, pipeRunMax)
		r.errs = make([]error, n, pipeRunMax)
	}
	r.resps, r.errs = r.resps[:n], r.errs[:n]
	r.applied = 0
	for i := range r.events {
		ev := &r.events[i]
		if ev.flags&flagFresh != 0 {
			sticky = nil
		}
		r.resps[i] = DeliverResponse{Outputs: r.resps[i].Outputs[:0]}
		var err error
		switch {
		case sticky != nil:
			err = sticky
		case ps.ctx.Err() != nil:
			// The stream is gone: nobody would hear the answer, and an
			// event not run is better than one run unseen.
			err = fmt.Errorf("%w: %w", ErrPeerUnavailable, context.Cause(ps.ctx))
		case ps.pops != nil:
			err = ps.pops.Apply(ps.ctx, ev.ev, &r.resps[i])
		default:
			r.resps[i], err = ps.ops.Deliver(ps.ctx, DeliverRequest{Event: ev.ev})
		}
		if errors.Is(err, ErrNotHosted) {
			if rt, ok := ps.e.routes.Moved(ev.ev.Target); ok {
				err = &MovedError{Origin: ev.ev.Target, To: rt.Node, Epoch: rt.Epoch}
			}
		}
		if err == nil {
			r.applied++
		} else if me := asMoved(err); me != nil {
			sticky = me
		}
		r.errs[i] = err
	}
	return sticky
}

// commit makes the applied rounds durable with one Commit and answers
// them in order; rounds applied meanwhile go with the next Commit. It ends
// when no round waits.
func (ps *pipeServer) commit(target uint64, t *srvTarget) {
	defer ps.workers.Done()
	for {
		ps.mu.Lock()
		if len(t.done) == 0 {
			t.committing = false
			ps.maybeRetireLocked(target, t)
			ps.mu.Unlock()
			return
		}
		rounds := t.done
		t.done = t.spare[:0]
		ps.mu.Unlock()

		applied := 0
		for _, r := range rounds {
			applied += r.applied
		}
		if ps.pops != nil && applied > 0 {
			if cerr := ps.pops.Commit(ps.ctx); cerr != nil {
				// Outputs of events that may not survive a crash are
				// withheld.
				for _, r := range rounds {
					for i := range r.errs {
						if r.errs[i] == nil {
							r.errs[i] = cerr
						}
					}
				}
			}
		}
		// Room in the window before the answers can leave: a client that
		// hears an answer may send the next event at once.
		ps.mu.Lock()
		for _, r := range rounds {
			t.outstanding -= len(r.events)
			ps.queued -= len(r.events)
		}
		ps.mu.Unlock()
		ps.wmu.Lock()
		for _, r := range rounds {
			for i := range r.events {
				ps.answerLocked(r.events[i].id, r.events[i].flags&flagNoLinks != 0, &r.resps[i], r.errs[i])
			}
		}
		ps.wmu.Unlock()
		ps.kickWriter()
		for _, r := range rounds {
			for i := range r.events {
				r.events[i].frame.release()
				r.errs[i] = nil
			}
			clear(r.events)
			r.events = r.events[:0]
		}
		ps.mu.Lock()
		t.free = append(t.free, rounds...)
		clear(rounds)
		t.spare = rounds[:0]
		ps.mu.Unlock()
	}
}

func (ps *pipeServer) answer(id uint64, resp *DeliverResponse, err error) {
	ps.wmu.Lock()
	ps.answerLocked(id, false, resp, err)
	ps.wmu.Unlock()
	ps.kickWriter()
}

func (ps *pipeServer) answerLocked(id uint64, noLinks bool, resp *DeliverResponse, err error) {
	var n int
	if err == nil {
		// One answer must fit a frame, or the client could not read the
		// stream at all: refuse this event's outputs, not the connection.
		n = 2*binary.MaxVarintLen64 + 1
		for i := range resp.Outputs {
			n += len(resp.Outputs[i].Link) + binary.MaxVarintLen64 + len(resp.Outputs[i].Payload)
		}
		if limit := ps.s.maxFrame - 1 - pipeBatchHeader; n > limit {
			err = fmt.Errorf("%w: outputs of %d bytes, limit %d", ErrFrameTooLarge, n, limit)
		}
	}
	if err == nil {
		b, eerr := appendOKItem(ps.out.item(n), id, resp, noLinks)
		if eerr == nil {
			ps.out.b = b
			return
		}
		// item() counted an item: replace it with the error, not add one.
		ps.out.count--
		err = eerr
	}
	ps.out.b = appendErrItem(ps.out.item(errItemMax), id, err)
}

func (ps *pipeServer) kickWriter() {
	select {
	case ps.kick <- struct{}{}:
	default:
	}
}

// writer sends the answers buffered so far as one write; answers queued
// while a write is in progress go out together in the next.
func (ps *pipeServer) writer(stop <-chan struct{}) {
	broken := false
	flush := func() {
		ps.wmu.Lock()
		buf := ps.out.take(ps.spare)
		ps.wmu.Unlock()
		if len(buf) > 0 && !broken {
			if _, err := ps.s.qs.Write(buf); err != nil {
				// The reader sees the broken stream and ends the handler.
				broken = true
				ps.s.Abort()
			}
		}
		ps.wmu.Lock()
		ps.spare = buf[:0]
		ps.wmu.Unlock()
	}
	for {
		select {
		case <-ps.kick:
			flush()
		case <-stop:
			flush()
			return
		}
	}
}

// asMoved is errors.As for *MovedError, kept out of the success path: the
// target variable of errors.As escapes, costing an allocation per call.
func asMoved(err error) *MovedError {
	if err == nil {
		return nil
	}
	var me *MovedError
	if errors.As(err, &me) {
		return me
	}
	return nil
}
