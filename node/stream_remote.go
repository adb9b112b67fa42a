package node

import (
	"context"

	meshquic "github.com/wasmesh/wasmesh/transport/quic"
)

// remoteCall is one stream event on its way to another node. Its fields
// mirror the transport's pipelined meshquic.DeliverCall so that goDeliver
// can hand it over as is.
type remoteCall struct {
	To    meshquic.NodeID
	Event meshquic.Event
	Resp  meshquic.DeliverResponse
	Err   error
	// Done receives the call once Resp or Err is set; it has room for
	// every call of the stream in flight, so a completion never blocks.
	Done chan *remoteCall

	slot *slot
	peer peerRef // To, for messages
}

// goDeliver sends every remote event of a stream. Calls to one target
// complete on Done in the order they were made, following "moved" answers
// (a move to this node comes back as a *meshquic.MovedError). For now it is
// synchronous, one event per round trip; it is the one place to switch to
// the transport's pipelined delivery, which keeps many events in flight.
func (n *Node) goDeliver(ctx context.Context, c *remoteCall) {
	c.Resp, c.Err = n.ep.RemoteDeliver(ctx, c.To, meshquic.DeliverRequest{Event: c.Event})
	c.Done <- c
}
