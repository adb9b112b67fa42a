package meshquic

import (
	"context"
	"errors"
	"fmt"
)

// Subprotocols of the remote operations. The /1 suffix versions each one
// independently.
const (
	SubDeliver  = "wasmesh/deliver/1"
	SubSpawn    = "wasmesh/spawn/1"
	SubStop     = "wasmesh/stop/1"
	SubSnapshot = "wasmesh/snapshot/1"
	SubModule   = "wasmesh/module/1"
)

// Event is one event for a daemon.
type Event struct {
	// Target is the receiving daemon's origin hash.
	Target uint64 `msgpack:"t"`
	// Sender is the sending daemon's origin hash (0 for an external client).
	Sender uint64 `msgpack:"s"`
	// Seq is the sender's sequence number for this event.
	Seq     uint64 `msgpack:"q"`
	Payload []byte `msgpack:"p"`
	// Once asks for exactly-once delivery (host.Event.Once).
	Once bool `msgpack:"once,omitempty"`
}

// Output is one output of a daemon with its causal link.
type Output struct {
	// Link is the 56-byte chain.Link encoding (Link.AppendBinary).
	Link    []byte `msgpack:"l"`
	Payload []byte `msgpack:"p"`
}

// DeliverRequest asks the hosting node to process one event.
type DeliverRequest struct {
	Event Event `msgpack:"e"`
}

// DeliverResponse carries the outputs the event produced.
type DeliverResponse struct {
	Outputs []Output `msgpack:"o"`
	// Duplicate: an exactly-once event the daemon had already applied;
	// nothing ran and Outputs is empty.
	Duplicate bool `msgpack:"dup,omitempty"`
}

// SpawnRequest asks a node to start a daemon from a module it has or will
// fetch (from the caller, by digest) and returns the new daemon's address.
type SpawnRequest struct {
	Digest string            `msgpack:"d"`
	Kind   string            `msgpack:"k,omitempty"`
	Config []byte            `msgpack:"c,omitempty"`
	Labels map[string]string `msgpack:"l,omitempty"`
}

// SpawnResponse names the spawned daemon.
type SpawnResponse struct {
	Origin   uint64 `msgpack:"o"`
	EntityID []byte `msgpack:"id"`
	// Epoch is the route epoch the caller should announce.
	Epoch uint64 `msgpack:"e"`
}

// StopRequest stops a daemon.
type StopRequest struct {
	Origin uint64 `msgpack:"o"`
}

// StopResponse acknowledges a stop.
type StopResponse struct{}

// SnapshotRequest asks for a daemon's latest snapshot.
type SnapshotRequest struct {
	Origin uint64 `msgpack:"o"`
}

// SnapshotResponse carries an encoded snapshot. It travels as one frame, so
// it is bounded by MaxFrame; migration streams large state in chunks.
type SnapshotResponse struct {
	Snapshot []byte `msgpack:"s"`
}

// LocalOps is what a node offers its peers; the node implements it and
// ServeLocalOps exposes it. The authenticated caller is PeerFromContext(ctx).
// Return ErrNotHosted for a daemon this node does not host, ErrNotFound for
// an unknown module, or an error implementing Coder for anything the caller
// should be able to tell apart.
type LocalOps interface {
	Deliver(ctx context.Context, req DeliverRequest) (DeliverResponse, error)
	Spawn(ctx context.Context, req SpawnRequest) (SpawnResponse, error)
	Stop(ctx context.Context, req StopRequest) (StopResponse, error)
	Snapshot(ctx context.Context, req SnapshotRequest) (SnapshotResponse, error)
	// ModuleBytes returns the module with the given digest (see
	// ParseDigest); the fetcher verifies it.
	ModuleBytes(ctx context.Context, digest string) ([]byte, error)
}

type peerKey struct{}

// PeerFromContext returns the authenticated peer of a request; every
// handler's context (and so every LocalOps call) carries it.
func PeerFromContext(ctx context.Context) (NodeID, bool) {
	id, ok := ctx.Value(peerKey{}).(NodeID)
	return id, ok
}

func withPeer(ctx context.Context, id NodeID) context.Context {
	return context.WithValue(ctx, peerKey{}, id)
}

// unaryOp adapts a LocalOps method (the handler context already carries
// the peer).
func unaryOp[Req, Resp any](f func(context.Context, Req) (Resp, error)) StreamHandler {
	return Unary(func(ctx context.Context, _ NodeID, req Req) (Resp, error) {
		return f(ctx, req)
	})
}

// ServeLocalOps registers the remote-operation subprotocols backed by ops.
func (e *Endpoint) ServeLocalOps(ops LocalOps) {
	e.Handle(SubDeliver, unaryOp(func(ctx context.Context, req DeliverRequest) (DeliverResponse, error) {
		resp, err := ops.Deliver(ctx, req)
		if errors.Is(err, ErrNotHosted) {
			// The daemon left: tell the caller where it went, if known.
			if r, ok := e.routes.Moved(req.Event.Target); ok {
				return resp, &MovedError{Origin: req.Event.Target, To: r.Node, Epoch: r.Epoch}
			}
		}
		return resp, err
	}))
	e.Handle(SubDeliverPipe, e.servePipeline(ops))
	e.Handle(SubSpawn, unaryOp(ops.Spawn))
	e.Handle(SubStop, unaryOp(ops.Stop))
	e.Handle(SubSnapshot, unaryOp(ops.Snapshot))
	e.Handle(SubModule, e.serveModule(ops))
}

// RemoteDeliver delivers an event to the daemon on node to, over the
// pipelined stream to that node (see Go). A "moved" answer updates Routes
// and is followed, at most MaxRedirects times; a redirect to this node
// itself is returned as the *MovedError for the caller to deliver locally.
func (e *Endpoint) RemoteDeliver(ctx context.Context, to NodeID, req DeliverRequest) (DeliverResponse, error) {
	call := &DeliverCall{To: to, Event: req.Event, Done: make(chan *DeliverCall, 1)}
	e.Go(ctx, call)
	select {
	case <-call.Done:
	case <-ctx.Done():
		// The call stays in flight; its answer lands in the buffered Done
		// and is dropped with it.
		return DeliverResponse{}, ctxErr(ctx)
	}
	if call.Err != nil {
		return DeliverResponse{}, call.Err
	}
	return call.Resp, nil
}

// RouteDeliver delivers an event wherever Routes says its target lives.
func (e *Endpoint) RouteDeliver(ctx context.Context, req DeliverRequest) (DeliverResponse, error) {
	r, ok := e.routes.Lookup(req.Event.Target)
	if !ok {
		return DeliverResponse{}, fmt.Errorf("%w: no route to daemon %016x", ErrNotFound, req.Event.Target)
	}
	return e.RemoteDeliver(ctx, r.Node, req)
}

// RemoteSpawn asks node to spawn a daemon.
func (e *Endpoint) RemoteSpawn(ctx context.Context, node NodeID, req SpawnRequest) (SpawnResponse, error) {
	var resp SpawnResponse
	err := e.Call(ctx, PeerID(node), SubSpawn, req, &resp)
	return resp, err
}

// RemoteStop asks node to stop a daemon.
func (e *Endpoint) RemoteStop(ctx context.Context, node NodeID, req StopRequest) error {
	return e.Call(ctx, PeerID(node), SubStop, req, &StopResponse{})
}

// RemoteSnapshot asks node for a daemon's snapshot.
func (e *Endpoint) RemoteSnapshot(ctx context.Context, node NodeID, req SnapshotRequest) (SnapshotResponse, error) {
	var resp SnapshotResponse
	err := e.Call(ctx, PeerID(node), SubSnapshot, req, &resp)
	return resp, err
}
