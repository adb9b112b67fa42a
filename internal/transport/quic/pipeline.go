package meshquic

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// SubDeliverPipe is the pipelined delivery subprotocol: one long-lived
// stream per peer carrying batches of events one way and batches of
// results the other, each item tagged with its call id.
const SubDeliverPipe = "wasmesh/deliver/2"

// Flow-control bounds of the pipeline. The per-target window is also what
// the server accepts queued per (stream, daemon): a client within it never
// makes the server block its reader.
const (
	// PipeTargetWindow bounds calls in flight per target daemon.
	PipeTargetWindow = 4096
	// PipePeerCalls and PipePeerBytes bound calls and payload bytes in
	// flight per peer.
	PipePeerCalls = 4 * PipeTargetWindow
	PipePeerBytes = 8 << 20
	// pipeBatchBytes is where a batch frame is cut.
	pipeBatchBytes = 64 << 10
)

// DeliverCall is one pipelined delivery, in the style of net/rpc's Call:
// a caller that reuses its calls (and their Done channel) delivers without
// allocating. The pipeline owns the call from Go until it is sent on Done;
// Event.Payload must stay unchanged until then, and Resp's buffers are
// reused when the call is reused (copy what you keep).
type DeliverCall struct {
	// To is the node to deliver to; it is updated when a "moved" answer
	// is followed.
	To    NodeID
	Event Event
	// Resp holds the result on success.
	Resp DeliverResponse
	// Err is the failure: *MovedError when the daemon moved to this node
	// itself (deliver it locally), *RemoteError for the peer's refusal,
	// ErrPeerUnavailable when the connection broke with the call in
	// flight (its fate is unknown), ErrTooManyRedirects, or a context
	// error while Go waited for room.
	Err error
	// NoLinks: the caller does not want the outputs' causal links (each as
	// large as a small output): Resp's outputs come without them.
	NoLinks bool
	// Done receives the call when it completes. It should be buffered
	// with room for every call outstanding on it; nil gets a channel of
	// one.
	Done chan *DeliverCall

	hops int
	seq  uint64 // start order, to fail a broken connection's calls in order
	id   uint64
	size int
}

// pipeline is an endpoint's client side of SubDeliverPipe.
type pipeline struct {
	e *Endpoint

	mu      sync.Mutex
	seq     uint64
	peers   map[NodeID]*pipePeer
	targets map[uint64]*pipeTarget
	// space is closed (and cleared) when a window may have room; nil
	// while nobody waits.
	space   chan struct{}
	scratch []*DeliverCall
}

// pipeTarget orders one daemon's calls. While some are in flight they all
// went to node; after a "moved" answer the redirected ones wait until the
// old node answered everything, then go out first, before any newer call.
type pipeTarget struct {
	node     NodeID
	n        int // calls accepted and not completed
	inflight int // calls sent to node and not answered
	redirect []*DeliverCall
	held     []*DeliverCall
}

// pipePeer is the stream to one node and its send buffer.
type pipePeer struct {
	id    NodeID
	s     *Stream
	gen   uint64 // bumped when the stream fails; calls of older gens are gone
	calls int
	bytes int
	slots []*DeliverCall
	free  []uint32
	idSeq uint64
	out   frameBuf
	spare []byte
	kick  chan struct{}
	// closed: no writer serves this peer (the endpoint is closing), so
	// calls for it fail at once instead of waiting for nobody.
	closed bool
}

func (e *Endpoint) pipe() *pipeline {
	e.pipeOnce.Do(func() {
		e.pipeline = &pipeline{e: e, peers: make(map[NodeID]*pipePeer), targets: make(map[uint64]*pipeTarget)}
	})
	return e.pipeline
}

// Go starts a pipelined delivery of call.Event to call.To and returns
// once it is queued; call arrives on call.Done when complete. Go blocks
// only while the per-daemon or per-peer window is full (ctx bounds that
// wait). Calls for one daemon started in order are applied and complete in
// order, also across a followed "moved" answer.
func (e *Endpoint) Go(ctx context.Context, call *DeliverCall) {
	if call.Done == nil {
		call.Done = make(chan *DeliverCall, 1)
	}
	call.Err, call.hops = nil, 0
	call.Resp.Duplicate = false
	call.Resp.Outputs = call.Resp.Outputs[:0]
	call.size = len(call.Event.Payload)
	if n := eventItemSize(&call.Event) + frameHeaderSize + 1 + pipeBatchHeader; n > e.cfg.MaxFrame {
		call.Err = fmt.Errorf("%w: event of %d bytes, limit %d", ErrFrameTooLarge, n, e.cfg.MaxFrame)
		notify(call)
		return
	}
	e.pipe().start(ctx, call)
}

func notify(call *DeliverCall) {
	select {
	case call.Done <- call:
	default:
		// A full Done must not stall the connection's reader.
		go func() { call.Done <- call }()
	}
}

func (p *pipeline) start(ctx context.Context, call *DeliverCall) {
	p.mu.Lock()
	for {
		if err := p.e.ctx.Err(); err != nil {
			p.mu.Unlock()
			call.Err = ErrClosed
			notify(call)
			return
		}
		if err := ctx.Err(); err != nil {
			p.mu.Unlock()
			call.Err = ctxErr(ctx)
			notify(call)
			return
		}
		ts := p.targets[call.Event.Target]
		if ts == nil {
			ts = &pipeTarget{}
			p.targets[call.Event.Target] = ts
		}
		dest := call.To
		if ts.inflight > 0 {
			dest = ts.node
		}
		pp := p.peers[dest]
		peerFull := pp != nil && (pp.calls >= PipePeerCalls || (pp.bytes > 0 && pp.bytes+call.size > PipePeerBytes))
		if ts.n < PipeTargetWindow && (len(ts.redirect) > 0 || !peerFull) {
			call.seq = p.seq
			p.seq++
			ts.n++
			if len(ts.redirect) > 0 {
				ts.held = append(ts.held, call)
			} else {
				call.To = dest
				p.sendLocked(ts, call)
			}
			p.mu.Unlock()
			return
		}
		if ts.n == 0 {
			delete(p.targets, call.Event.Target)
		}
		if p.space == nil {
			p.space = make(chan struct{})
		}
		ch := p.space
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		case <-p.e.ctx.Done():
		}
		p.mu.Lock()
	}
}

// peerLocked returns the pipePeer for id, starting its writer.
func (p *pipeline) peerLocked(id NodeID) *pipePeer {
	pp := p.peers[id]
	if pp != nil {
		return pp
	}
	pp = &pipePeer{id: id, out: newFrameBuf(pipeTypeEvents, pipeBatchBytes), kick: make(chan struct{}, 1)}
	p.peers[id] = pp
	e := p.e
	e.pmu.Lock()
	if e.closed {
		pp.closed = true
	} else {
		e.wg.Add(1)
		go p.writer(pp)
	}
	e.pmu.Unlock()
	return pp
}

// sendLocked registers call with its peer and encodes it into the peer's
// send buffer for the writer.
func (p *pipeline) sendLocked(ts *pipeTarget, call *DeliverCall) {
	pp := p.peerLocked(call.To)
	if pp.closed {
		ts.node = call.To
		ts.inflight++
		pp.calls++
		pp.bytes += call.size
		p.answerLocked(pp, call, ErrClosed)
		return
	}
	var flags byte
	if call.Event.Once {
		flags |= flagOnce
	}
	if ts.inflight == 0 {
		flags |= flagFresh
	}
	if call.NoLinks {
		flags |= flagNoLinks
	}
	ts.node = call.To
	ts.inflight++
	var slot uint32
	if k := len(pp.free); k > 0 {
		slot = pp.free[k-1]
		pp.free = pp.free[:k-1]
	} else {
		slot = uint32(len(pp.slots))
		pp.slots = append(pp.slots, nil)
	}
	pp.idSeq++
	call.id = pp.idSeq<<32 | uint64(slot)
	pp.slots[slot] = call
	pp.calls++
	pp.bytes += call.size
	pp.out.b = appendEventItem(pp.out.item(eventItemSize(&call.Event)), call.id, flags, &call.Event)
	select {
	case pp.kick <- struct{}{}:
	default:
	}
}

// wakeLocked lets callers waiting for room look again.
func (p *pipeline) wakeLocked() {
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
}

// answerLocked takes the answer for call (already removed from its slot):
// a followed "moved" queues it for resending, anything else completes it.
func (p *pipeline) answerLocked(pp *pipePeer, call *DeliverCall, err error) {
	pp.calls--
	pp.bytes -= call.size
	ts := p.targets[call.Event.Target]
	ts.inflight--
	if me := asMoved(err); me != nil && me.Origin == call.Event.Target {
		p.e.routes.Set(me.Origin, me.To, me.Epoch)
		switch {
		case me.To == p.e.id || me.To == call.To:
		case call.hops >= p.e.cfg.MaxRedirects:
			err = fmt.Errorf("%w after %d hops: %w", ErrTooManyRedirects, call.hops, err)
		default:
			call.hops++
			call.To = me.To
			ts.redirect = append(ts.redirect, call)
			err = nil
			call = nil
		}
	}
	if call != nil {
		p.finishLocked(ts, call, err)
	}
	if ts.inflight == 0 && len(ts.redirect) > 0 {
		// The old node answered everything: resend the redirected calls in
		// their order, then the ones that waited behind them.
		r, h := ts.redirect, ts.held
		ts.redirect, ts.held = nil, nil
		for _, c := range r {
			p.sendLocked(ts, c)
		}
		for _, c := range h {
			c.To = ts.node
			p.sendLocked(ts, c)
		}
		clear(r)
		clear(h)
		ts.redirect, ts.held = r[:0], h[:0]
	}
}

func (p *pipeline) finishLocked(ts *pipeTarget, call *DeliverCall, err error) {
	ts.n--
	if ts.n == 0 && len(ts.redirect) == 0 {
		delete(p.targets, call.Event.Target)
	}
	call.Err = err
	p.wakeLocked()
	notify(call)
}

// failLocked fails every call of pp's generation gen (the stream broke or
// could not be opened), in the order they were started.
func (p *pipeline) failLocked(pp *pipePeer, gen uint64, err error) {
	if pp.gen != gen {
		return
	}
	pp.gen++
	if pp.s != nil {
		pp.s.Abort()
		pp.s = nil
	}
	pp.out.reset()
	calls := p.scratch[:0]
	for i, c := range pp.slots {
		if c != nil {
			calls = append(calls, c)
			pp.slots[i] = nil
			pp.free = append(pp.free, uint32(i))
		}
	}
	slices.SortFunc(calls, func(a, b *DeliverCall) int { return cmp.Compare(a.seq, b.seq) })
	for _, c := range calls {
		p.answerLocked(pp, c, err)
	}
	clear(calls)
	p.scratch = calls[:0]
	// Let the writer retire the peer if nothing is left for it.
	select {
	case pp.kick <- struct{}{}:
	default:
	}
}

// writer sends pp's buffered batches, opening the stream when there is
// something to send and none is open.
func (p *pipeline) writer(pp *pipePeer) {
	e := p.e
	defer e.wg.Done()
	for {
		select {
		case <-pp.kick:
		case <-e.ctx.Done():
			p.mu.Lock()
			pp.closed = true
			p.failLocked(pp, pp.gen, ErrClosed)
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		gen, s := pp.gen, pp.s
		if len(pp.out.b) == 0 {
			if s == nil && pp.calls == 0 {
				// Idle without a stream (it broke, or the peer was never
				// reached): forget the peer, so nodes that left cost
				// nothing; the next call for it starts afresh.
				delete(p.peers, pp.id)
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		if s == nil {
			var err error
			s, err = p.open(pp.id)
			p.mu.Lock()
			if err != nil {
				p.failLocked(pp, gen, err)
				p.mu.Unlock()
				continue
			}
			if pp.gen != gen {
				p.mu.Unlock()
				s.Abort()
				continue
			}
			pp.s = s
			e.pmu.Lock()
			closed := e.closed
			if !closed {
				e.wg.Add(1)
				go p.reader(pp, s, gen)
			}
			e.pmu.Unlock()
			if closed {
				p.failLocked(pp, gen, ErrClosed)
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		if pp.gen != gen {
			p.mu.Unlock()
			continue
		}
		buf := pp.out.take(pp.spare)
		p.mu.Unlock()
		_, err := s.qs.Write(buf)
		p.mu.Lock()
		pp.spare = buf[:0]
		if err != nil {
			// The reader sees the broken stream too; failing here as well
			// is harmless (the generation check makes it once).
			p.failLocked(pp, gen, unavailable(s.mapErr(err)))
		}
		p.mu.Unlock()
	}
}

// open dials (if needed) and opens the pipeline stream to id. The stream
// lives with the endpoint, not with any caller's context.
func (p *pipeline) open(id NodeID) (*Stream, error) {
	e := p.e
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.DialTimeout+time.Second)
	defer cancel()
	conn, pid, err := e.conn(ctx, PeerID(id))
	if err != nil {
		return nil, err
	}
	qs, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, unavailable(mapQUICErr(err))
	}
	s := newStream(qs, pid, e.cfg.MaxFrame)
	s.sub = SubDeliverPipe
	s.ctx = e.ctx
	if err := s.send(kindHeader, header{Subprotocol: SubDeliverPipe, RequestID: e.reqID.Add(1)}); err != nil {
		s.Abort()
		return nil, unavailable(err)
	}
	return s, nil
}

func unavailable(err error) error {
	if errors.Is(err, ErrPeerUnavailable) || errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrPeerUnavailable, err)
}

// reader takes result batches off s and completes their calls; any failure
// of the stream fails every call still in flight on it.
func (p *pipeline) reader(pp *pipePeer, s *Stream, gen uint64) {
	defer p.e.wg.Done()
	var (
		buf  []byte
		res  []pipeResult
		outs []pipeOut
	)
	fail := func(err error) {
		p.mu.Lock()
		p.failLocked(pp, gen, err)
		p.mu.Unlock()
	}
	for {
		frame, err := ReadFrame(s.qs, buf[:0], s.maxFrame)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrTruncatedFrame) {
				fail(unavailable(err))
			} else {
				fail(unavailable(s.mapErr(err)))
			}
			return
		}
		if cap(frame) <= 2*pipeBatchBytes {
			buf = frame
		}
		kind, body, err := splitFrame(frame)
		if err == nil && kind == kindError {
			var w wireError
			if err = decodeBody(body, &w); err == nil {
				err = fromWire(s.peer, w)
			}
			fail(unavailable(err))
			return
		}
		if err == nil && kind != kindData {
			err = fmt.Errorf("%w: frame kind %d on the pipeline", ErrMalformed, kind)
		}
		if err == nil {
			res, outs, err = decodeResultBatch(body, res[:0], outs[:0])
		}
		if err == nil {
			err = p.complete(pp, gen, s, res, outs)
		}
		if err != nil {
			fail(unavailable(err))
			return
		}
	}
}

// complete hands one batch of results to their calls.
func (p *pipeline) complete(pp *pipePeer, gen uint64, s *Stream, res []pipeResult, outs []pipeOut) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp.gen != gen {
		return nil
	}
	for i := range res {
		r := &res[i]
		slot := uint32(r.id)
		if uint64(slot) >= uint64(len(pp.slots)) || pp.slots[slot] == nil || pp.slots[slot].id != r.id {
			return fmt.Errorf("%w: result for unknown call %d", ErrMalformed, r.id)
		}
		call := pp.slots[slot]
		pp.slots[slot] = nil
		pp.free = append(pp.free, slot)
		var err error
		switch r.status {
		case statusOK, statusBare:
			o := call.Resp.Outputs[:0]
			for _, w := range outs[r.outStart : r.outStart+r.outN] {
				if len(o) < cap(o) {
					o = o[:len(o)+1]
				} else {
					o = append(o, Output{})
				}
				last := &o[len(o)-1]
				last.Link = append(last.Link[:0], w.link...)
				last.Payload = append(last.Payload[:0], w.payload...)
			}
			call.Resp.Outputs = o
		case statusDup:
			call.Resp.Duplicate = true
		case statusError:
			err = &RemoteError{Peer: s.peer, Code: string(r.code), Message: string(r.msg)}
		case statusMoved:
			mv := r.moved
			err = &mv
		}
		p.answerLocked(pp, call, err)
	}
	return nil
}
