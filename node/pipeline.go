package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

var _ meshquic.PipelineOps = (*meshOps)(nil)

// Apply is Deliver without waiting for the journal: the pipelined server
// runs a daemon's queued events back to back and then calls Commit once,
// so one fsync covers the run instead of each event waiting for its own.
func (o *meshOps) Apply(ctx context.Context, ev meshquic.Event, resp *meshquic.DeliverResponse) error {
	n := o.node()
	d, err := n.rt.Daemon(ev.Target)
	if err != nil {
		// Moved away by a migration: tell the sender where it lives now.
		if mv, ok := n.ep.Routes().Moved(ev.Target); ok {
			return &meshquic.MovedError{Origin: ev.Target, To: mv.Node, Epoch: mv.Epoch}
		}
		if f, ok := n.findFailed(abi.FormatOrigin(ev.Target)); ok {
			return toWire(f.refusal("send"))
		}
		return fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
	}
	out := n.outputs.Get().(*engine.Outputs)
	defer n.outputs.Put(out)
	err = n.runLocalInto(ctx, d, engine.Event{Sender: ev.Sender, Seq: ev.Seq, Payload: ev.Payload, Once: ev.Once}, out, false)
	if errors.Is(err, engine.ErrDuplicateEvent) {
		// Applied by an earlier attempt: Commit makes sure it is durable
		// before the answer goes out.
		resp.Duplicate = true
		return nil
	}
	if err != nil {
		return toWire(err)
	}
	for _, out := range out.Items {
		o := resp.Outputs
		if len(o) < cap(o) {
			o = o[:len(o)+1]
		} else {
			o = append(o, meshquic.Output{})
		}
		last := &o[len(o)-1]
		last.Link = out.Link.AppendBinary(last.Link[:0])
		// Into the response's own buffers, reused round after round.
		last.Payload = append(last.Payload[:0], out.Payload...)
		resp.Outputs = o
	}
	return nil
}

// Commit waits until every event applied so far is in the journal on
// disk: outputs are never acknowledged for an event a crash could lose.
func (o *meshOps) Commit(ctx context.Context) error {
	n := o.node()
	if n.wal == nil {
		return nil
	}
	if err := n.wal.Sync(ctx); err != nil {
		return toWire(fmt.Errorf("%w: event ran but is not durable (its outputs are withheld): %w", ErrUnavailable, err))
	}
	return nil
}
