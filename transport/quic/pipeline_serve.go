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
	pipeRunMax       = 32
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

// srvTarget is one daemon's FIFO on one stream, run by at most one worker.
type srvTarget struct {
	q       []srvEvent
	spare   []srvEvent
	running bool
	// sticky: once a daemon answered "moved" on this stream, every later
	// event for it answers the same until the client starts afresh (it
	// holds new events while these are in flight, and resends them in
	// order at the new home): a daemon moving back meanwhile must not let
	// a later event overtake an earlier one.
	sticky *MovedError
	resps  []DeliverResponse
	errs   []error
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
	if over || len(t.q) >= PipeTargetWindow || ps.queued >= pipeStreamEvents {
		ps.answer(ev.id, nil, fmt.Errorf("%w: more than %d events queued for daemon %016x on this connection", ErrOverloaded, PipeTargetWindow, ev.ev.Target))
		ev.frame.release()
		if !t.running && len(t.q) == 0 && t.sticky == nil {
			ps.retireLocked(ev.ev.Target, t)
		}
		return
	}
	t.q = append(t.q, ev)
	ps.queued++
	if !t.running {
		t.running = true
		ps.workers.Add(1)
		go ps.work(ev.ev.Target, t)
	}
}

// retireLocked forgets an idle target, keeping its buffers for reuse.
func (ps *pipeServer) retireLocked(target uint64, t *srvTarget) {
	delete(ps.targets, target)
	if len(ps.idle) < 64 {
		ps.idle = append(ps.idle, t)
	}
}

// work runs one daemon's queued events: back to back, then one commit for
// the lot, then the answers. It ends when the queue is empty.
func (ps *pipeServer) work(target uint64, t *srvTarget) {
	defer ps.workers.Done()
	for {
		ps.mu.Lock()
		if len(t.q) == 0 {
			t.running = false
			if t.sticky == nil {
				ps.retireLocked(target, t)
			}
			ps.mu.Unlock()
			return
		}
		// A bounded run: the first answers of a long queue should not wait
		// for the whole queue to run and commit.
		batch := t.q
		t.q = append(t.spare[:0], batch[min(len(batch), pipeRunMax):]...)
		batch = batch[:min(len(batch), pipeRunMax)]
		ps.queued -= len(batch)
		sticky := t.sticky
		ps.mu.Unlock()

		sticky = ps.run(t, batch, sticky)

		ps.mu.Lock()
		t.sticky = sticky
		clear(batch)
		t.spare = batch[:0]
		ps.mu.Unlock()
	}
}

func (ps *pipeServer) run(t *srvTarget, batch []srvEvent, sticky *MovedError) *MovedError {
	n := len(batch)
	if cap(t.resps) < n {
		t.resps = make([]DeliverResponse, n)
		t.errs = make([]error, n)
	}
	resps, errs := t.resps[:n], t.errs[:n]
	applied := 0
	for i := range batch {
		ev := &batch[i]
		if ev.flags&flagFresh != 0 {
			sticky = nil
		}
		resps[i] = DeliverResponse{Outputs: resps[i].Outputs[:0]}
		var err error
		switch {
		case sticky != nil:
			err = sticky
		case ps.ctx.Err() != nil:
			// The stream is gone: nobody would hear the answer, and an
			// event not run is better than one run unseen.
			err = fmt.Errorf("%w: %w", ErrPeerUnavailable, context.Cause(ps.ctx))
		case ps.pops != nil:
			err = ps.pops.Apply(ps.ctx, ev.ev, &resps[i])
		default:
			resps[i], err = ps.ops.Deliver(ps.ctx, DeliverRequest{Event: ev.ev})
		}
		if errors.Is(err, ErrNotHosted) {
			if r, ok := ps.e.routes.Moved(ev.ev.Target); ok {
				err = &MovedError{Origin: ev.ev.Target, To: r.Node, Epoch: r.Epoch}
			}
		}
		if err == nil {
			applied++
		} else if me := asMoved(err); me != nil {
			sticky = me
		}
		errs[i] = err
	}
	if ps.pops != nil && applied > 0 {
		if cerr := ps.pops.Commit(ps.ctx); cerr != nil {
			// Outputs of events that may not survive a crash are withheld.
			for i := range errs {
				if errs[i] == nil {
					errs[i] = cerr
				}
			}
		}
	}
	ps.wmu.Lock()
	for i := range batch {
		ps.answerLocked(batch[i].id, &resps[i], errs[i])
	}
	ps.wmu.Unlock()
	ps.kickWriter()
	for i := range batch {
		batch[i].frame.release()
		errs[i] = nil
	}
	return sticky
}

func (ps *pipeServer) answer(id uint64, resp *DeliverResponse, err error) {
	ps.wmu.Lock()
	ps.answerLocked(id, resp, err)
	ps.wmu.Unlock()
	ps.kickWriter()
}

func (ps *pipeServer) answerLocked(id uint64, resp *DeliverResponse, err error) {
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
		b, eerr := appendOKItem(ps.out.item(n), id, resp)
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
