package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host"
	meshquic "github.com/wasmesh/wasmesh/transport/quic"
)

// Delivery is the result of one event.
type Delivery struct {
	Daemon  string   // id of the daemon that processed it
	Node    string   // name of the node that hosts it
	Outputs [][]byte // in emission order
	// Links are the outputs' causal links (56-byte chain.Link encodings),
	// parallel to Outputs, so a client can verify the daemon's chain.
	Links [][]byte
}

// Send delivers one event from an external client to a daemon (id or name)
// wherever it lives: locally, along the cached route, or wherever a lookup
// finds it (following "moved" answers, so a name keeps working while the
// daemon migrates).
func (n *Node) Send(ctx context.Context, ref string, payload []byte) (Delivery, error) {
	if d, ok := n.findLocal(ref); ok {
		return n.sendLocal(ctx, d, payload)
	}
	if o, err := abi.ParseOrigin(ref); err == nil {
		if r, ok := n.ep.Routes().Lookup(o); ok && r.Node != n.id {
			res, err := n.sendRemote(ctx, o, peerRef{id: r.Node, name: n.peerName(r.Node)}, payload)
			if !errors.Is(err, ErrDaemonNotFound) && !errors.Is(err, ErrUnavailable) {
				return res, err
			}
			n.ep.Routes().Delete(o, r.Epoch)
		}
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
		return n.sendLocal(ctx, d, payload)
	}
	return n.sendRemote(ctx, o, loc.node, payload)
}

func (n *Node) sendLocal(ctx context.Context, d *host.Daemon, payload []byte) (Delivery, error) {
	outs, err := n.deliverLocal(ctx, d, host.Event{Sender: 0, Seq: n.eventSeq.Add(1), Payload: payload})
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

func (n *Node) sendRemote(ctx context.Context, origin uint64, p peerRef, payload []byte) (Delivery, error) {
	req := meshquic.DeliverRequest{Event: meshquic.Event{Target: origin, Sender: 0, Seq: n.eventSeq.Add(1), Payload: payload}}
	resp, err := n.ep.RemoteDeliver(ctx, p.id, req)
	var me *meshquic.MovedError
	if errors.As(err, &me) && me.To == n.id {
		// It moved here while we were asking.
		if d, derr := n.rt.Daemon(origin); derr == nil {
			return n.Send(ctx, d.ID(), payload)
		}
	}
	if err != nil {
		return Delivery{}, fromRemote(err, p.String())
	}
	res := Delivery{Daemon: abi.FormatOrigin(origin), Node: p.String(), Outputs: make([][]byte, len(resp.Outputs)), Links: make([][]byte, len(resp.Outputs))}
	for i, o := range resp.Outputs {
		res.Outputs[i] = o.Payload
		res.Links[i] = o.Link
	}
	return res, nil
}

// deliverLocal runs one event on a local daemon and records its metrics.
func (n *Node) deliverLocal(ctx context.Context, d *host.Daemon, ev host.Event) ([]host.Output, error) {
	start := time.Now()
	outs, err := d.Deliver(ctx, ev)
	n.metrics.eventLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		n.metrics.eventsFailed.Inc()
		var ee *host.EventError
		switch {
		case errors.As(err, &ee), errors.Is(err, host.ErrDaemonFailed):
			return nil, wrap(ErrEventFailed, err)
		case errors.Is(err, host.ErrDaemonStopped), errors.Is(err, host.ErrDaemonNotFound):
			return nil, wrap(ErrDaemonNotFound, err)
		}
		return nil, fmt.Errorf("deliver to %s: %w", d.ID(), err)
	}
	n.metrics.eventsProcessed.Inc()
	return outs, nil
}
