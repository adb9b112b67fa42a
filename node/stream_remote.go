package node

import (
	"context"

	meshquic "github.com/wasmesh/wasmesh/transport/quic"
)

// remoteCall is one stream event on its way to another node: the
// transport's pipelined call plus what the stream needs to answer it.
type remoteCall struct {
	meshquic.DeliverCall

	slot *slot
	peer peerRef // To, for messages
}

// goDeliver sends one remote event of a stream through the transport's
// pipeline (many events in flight per peer, batched on one stream). Calls
// to one target complete on Done in the order they were made, following
// "moved" answers (a move to this node comes back as a
// *meshquic.MovedError). pending maps the transport's call back to the
// stream's; only the stream's Run goroutine touches it.
func (n *Node) goDeliver(ctx context.Context, c *remoteCall, pending map[*meshquic.DeliverCall]*remoteCall) {
	pending[&c.DeliverCall] = c
	n.ep.Go(ctx, &c.DeliverCall)
}
