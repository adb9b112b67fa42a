package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// meshOps is the node as its peers see it (meshquic.LocalOps).
type meshOps Node

var _ meshquic.LocalOps = (*meshOps)(nil)

func (o *meshOps) node() *Node { return (*Node)(o) }

func (o *meshOps) Deliver(ctx context.Context, req meshquic.DeliverRequest) (meshquic.DeliverResponse, error) {
	n := o.node()
	d, err := n.rt.Daemon(req.Event.Target)
	if err != nil {
		// Moved away by a migration: tell the sender where it lives now.
		if mv, ok := n.ep.Routes().Moved(req.Event.Target); ok {
			return meshquic.DeliverResponse{}, &meshquic.MovedError{Origin: req.Event.Target, To: mv.Node, Epoch: mv.Epoch}
		}
		if f, ok := n.findFailed(abi.FormatOrigin(req.Event.Target)); ok {
			return meshquic.DeliverResponse{}, toWire(f.refusal("send"))
		}
		return meshquic.DeliverResponse{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
	}
	outs, err := n.deliverLocal(ctx, d, engine.Event{Sender: req.Event.Sender, Seq: req.Event.Seq, Payload: req.Event.Payload, Once: req.Event.Once})
	if errors.Is(err, engine.ErrDuplicateEvent) {
		return meshquic.DeliverResponse{Duplicate: true}, nil
	}
	if err != nil {
		return meshquic.DeliverResponse{}, toWire(err)
	}
	resp := meshquic.DeliverResponse{Outputs: make([]meshquic.Output, len(outs))}
	for i, out := range outs {
		link := out.Link.AppendBinary(nil)
		resp.Outputs[i] = meshquic.Output{Link: link, Payload: out.Payload}
	}
	return resp, nil
}

func (o *meshOps) Spawn(ctx context.Context, req meshquic.SpawnRequest) (meshquic.SpawnResponse, error) {
	n := o.node()
	peer, ok := meshquic.PeerFromContext(ctx)
	if !ok {
		return meshquic.SpawnResponse{}, fmt.Errorf("%w: no authenticated peer", meshquic.ErrForbidden)
	}
	from := &peerRef{id: peer, name: n.peerName(peer)}
	k, _, err := n.kindForSpawn(ctx, req.Digest, from)
	if err != nil {
		return meshquic.SpawnResponse{}, toWire(err)
	}
	info, err := n.spawnLocal(ctx, SpawnRequest{Kind: string(k.Digest), Name: req.Labels["name"], Config: req.Config}, from)
	if err != nil {
		// The caller's kind name is kept only with a daemon that runs.
		return meshquic.SpawnResponse{}, toWire(err)
	}
	if req.Kind != "" {
		if o, err := abi.ParseOrigin(info.ID); err == nil {
			n.keepAlias(ctx, req.Kind, k, o)
		}
	}
	d, ok := n.findLocal(info.ID)
	if !ok {
		return meshquic.SpawnResponse{}, fmt.Errorf("%w: daemon %s stopped right after spawn", meshquic.ErrNotHosted, info.ID)
	}
	ent := d.EntityID()
	return meshquic.SpawnResponse{Origin: d.Origin(), EntityID: ent[:], Epoch: 1}, nil
}

func (o *meshOps) Stop(ctx context.Context, req meshquic.StopRequest) (meshquic.StopResponse, error) {
	n := o.node()
	d, err := n.rt.Daemon(req.Origin)
	if f, ok := n.findFailed(abi.FormatOrigin(req.Origin)); err != nil && ok {
		_, err := n.stopFailed(ctx, f)
		return meshquic.StopResponse{}, toWire(err)
	}
	if err != nil {
		return meshquic.StopResponse{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
	}
	_, err = n.stopLocal(ctx, d)
	return meshquic.StopResponse{}, toWire(err)
}

func (o *meshOps) Snapshot(ctx context.Context, req meshquic.SnapshotRequest) (meshquic.SnapshotResponse, error) {
	n := o.node()
	d, err := n.rt.Daemon(req.Origin)
	if f, ok := n.findFailed(abi.FormatOrigin(req.Origin)); err != nil && ok {
		return meshquic.SnapshotResponse{}, toWire(f.refusal("snapshot"))
	}
	if err != nil {
		return meshquic.SnapshotResponse{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
	}
	data, err := n.snapshotLocal(ctx, d)
	if err != nil {
		return meshquic.SnapshotResponse{}, toWire(err)
	}
	return meshquic.SnapshotResponse{Snapshot: data}, nil
}

func (o *meshOps) ModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	n := o.node()
	k, err := n.rt.Kind(digest)
	if err != nil {
		if errors.Is(err, engine.ErrUnknownKind) {
			return nil, fmt.Errorf("%w: %w", meshquic.ErrNotFound, err)
		}
		return nil, err
	}
	return k.Bytes(), nil
}
