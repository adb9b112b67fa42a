package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// Delivery is the result of one event.
type Delivery struct {
	Daemon  string   // id of the daemon that processed it
	Node    string   // name of the node that hosts it
	Outputs [][]byte // in emission order
	// Links are the outputs' causal links (56-byte chain.Link encodings),
	// parallel to Outputs, so a client can verify the daemon's chain.
	Links [][]byte
	// Duplicate: the event carried a client event id the daemon had
	// already applied (SendOnce); it was not applied again, and its
	// outputs went to the first attempt.
	Duplicate bool
}

// input is one client event on its way to a daemon.
type input struct {
	payload     []byte
	sender, seq uint64 // a client's id and event id; 0 for anonymous sends
	once        bool
}

// event is the host event for in; anonymous sends get a node-assigned
// sequence number.
func (n *Node) event(in input) engine.Event {
	if !in.once {
		return engine.Event{Sender: 0, Seq: n.eventSeq.Add(1), Payload: in.payload}
	}
	return engine.Event{Sender: in.sender, Seq: in.seq, Payload: in.payload, Once: true}
}

// Send delivers one event from an external client to a daemon (id or name)
// wherever it lives: locally, along the cached route, or wherever a lookup
// finds it (following "moved" answers, so a name keeps working while the
// daemon migrates).
func (n *Node) Send(ctx context.Context, ref string, payload []byte) (Delivery, error) {
	return n.send(ctx, ref, input{payload: payload})
}

// SendOnce is Send with a client event id: the daemon applies the event at
// most once per (client, eventID), across retries, migrations and crashes
// of the hosting node, so a client that resends an event it got no answer
// for never has it applied twice (a resend of an applied one answers
// Duplicate). A client numbers its events 1, 2, 3 ... in the order it sends
// them; an id at or below one already applied counts as applied.
func (n *Node) SendOnce(ctx context.Context, ref, client string, eventID uint64, payload []byte) (Delivery, error) {
	sender, err := ClientSender(client)
	if err != nil {
		return Delivery{}, err
	}
	if eventID == 0 {
		return Delivery{}, fmt.Errorf("%w: client event ids start at 1", ErrBadRequest)
	}
	return n.send(ctx, ref, input{payload: payload, sender: sender, seq: eventID, once: true})
}

func (n *Node) send(ctx context.Context, ref string, in input) (Delivery, error) {
	if d, ok := n.findLocal(ref); ok {
		return n.sendLocal(ctx, d, in)
	}
	if f, ok := n.findFailed(ref); ok {
		return Delivery{}, f.refusal("send")
	}
	// An id's route, or the route of the daemon a name resolved to: a
	// repeated send asks no one where it lives (directory.go).
	if o, r, ok := n.cachedRoute(ref); ok {
		res, err := n.sendRemote(ctx, o, peerRef{id: r.Node, name: n.peerName(r.Node)}, in)
		if !errors.Is(err, ErrDaemonNotFound) && !errors.Is(err, ErrUnavailable) {
			return res, err
		}
		n.forgetRoute(ref, o, r)
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return Delivery{}, err
	}
	o, err := abi.ParseOrigin(loc.info.ID)
	if err != nil {
		return Delivery{}, err
	}
	if d, ok := n.localAt(loc); ok {
		// It moved here (its name may not have followed yet).
		return n.sendLocal(ctx, d, in)
	}
	return n.sendRemote(ctx, o, loc.node, in)
}

func (n *Node) sendLocal(ctx context.Context, d *engine.Daemon, in input) (Delivery, error) {
	outs, err := n.deliverLocal(ctx, d, n.event(in))
	if errors.Is(err, engine.ErrDuplicateEvent) {
		return Delivery{Daemon: d.ID(), Node: n.name, Duplicate: true}, nil
	}
	if err != nil {
		return Delivery{}, err
	}
	res := Delivery{Daemon: d.ID(), Node: n.name, Outputs: make([][]byte, len(outs)), Links: make([][]byte, len(outs))}
	for i, o := range outs {
		res.Outputs[i] = o.Payload
		res.Links[i] = o.Link.AppendBinary(nil)
	}
	return res, nil
}

func (n *Node) sendRemote(ctx context.Context, origin uint64, p peerRef, in input) (Delivery, error) {
	ev := n.event(in)
	req := meshquic.DeliverRequest{Event: meshquic.Event{Target: origin, Sender: ev.Sender, Seq: ev.Seq, Payload: ev.Payload, Once: ev.Once}}
	resp, err := n.ep.RemoteDeliver(ctx, p.id, req)
	var me *meshquic.MovedError
	if errors.As(err, &me) && me.To == n.id {
		// It moved here while we were asking.
		if d, derr := n.rt.Daemon(origin); derr == nil {
			return n.send(ctx, d.ID(), in)
		}
	}
	if err != nil {
		return Delivery{}, fromRemote(err, p.String())
	}
	res := Delivery{Daemon: abi.FormatOrigin(origin), Node: p.String(), Outputs: make([][]byte, len(resp.Outputs)), Links: make([][]byte, len(resp.Outputs)), Duplicate: resp.Duplicate}
	for i, o := range resp.Outputs {
		res.Outputs[i] = o.Payload
		res.Links[i] = o.Link
	}
	return res, nil
}

// deliverLocal runs one event on a local daemon and records its metrics.
// Under DurabilitySync it returns only once the event is in the journal on
// disk: outputs are never acknowledged for an event a crash could lose.
func (n *Node) deliverLocal(ctx context.Context, d *engine.Daemon, ev engine.Event) ([]engine.Output, error) {
	return n.runLocal(ctx, d, ev, true)
}

// runLocal is deliverLocal; with durable false it does not wait for the
// journal's fsync (the pipelined path commits a run of events at once).
func (n *Node) runLocal(ctx context.Context, d *engine.Daemon, ev engine.Event, durable bool) ([]engine.Output, error) {
	out := n.outputs.Get().(*engine.Outputs)
	defer n.outputs.Put(out)
	if err := n.runLocalInto(ctx, d, ev, out, durable); err != nil {
		return nil, err
	}
	if len(out.Items) == 0 {
		return nil, nil
	}
	return out.Clone(), nil
}

// runLocalInto is runLocal into out (valid until out is used again).
func (n *Node) runLocalInto(ctx context.Context, d *engine.Daemon, ev engine.Event, out *engine.Outputs, durable bool) error {
	if n.wal != nil {
		if err := n.wal.Err(); err != nil {
			return fmt.Errorf("%w: this node cannot make events durable: %w", ErrUnavailable, err)
		}
	}
	start := time.Now()
	err := d.DeliverInto(ctx, ev, out)
	dup := errors.Is(err, engine.ErrDuplicateEvent)
	if dup {
		// Applied by an earlier attempt, which may still be waiting for its
		// fsync: answer "applied" only once that is durable too.
		err = nil
	}
	if err == nil && n.wal != nil && durable {
		// Group commit: this waits for the fsync that covers the event,
		// shared with every event that arrived meanwhile.
		if serr := n.wal.Sync(ctx); serr != nil {
			n.metrics.eventLatency.Observe(time.Since(start).Seconds())
			return fmt.Errorf("%w: event ran but is not durable (its outputs are withheld): %w", ErrUnavailable, serr)
		}
	}
	n.metrics.eventLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		n.metrics.eventsFailed.Inc()
		var ee *engine.EventError
		switch {
		case errors.As(err, &ee), errors.Is(err, engine.ErrDaemonFailed):
			return wrap(ErrEventFailed, err)
		case errors.Is(err, engine.ErrDaemonStopped), errors.Is(err, engine.ErrDaemonNotFound):
			return wrap(ErrDaemonNotFound, err)
		}
		return fmt.Errorf("deliver to %s: %w", d.ID(), err)
	}
	if dup {
		return fmt.Errorf("deliver to %s: %w", d.ID(), engine.ErrDuplicateEvent)
	}
	n.metrics.eventsProcessed.Inc()
	return nil
}
