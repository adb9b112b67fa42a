package node

import (
	"context"

	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// RelayFailure makes b answer the subprotocol sub with err the way every
// node handler answers (toWire), and returns a call from a to b that maps
// the answer back the way every relaying call site does (fromRemote). It
// lets tests relay failures no real request can provoke on demand.
func RelayFailure(a, b *Node, sub string, err error) func(context.Context) error {
	b.ep.Handle(sub, meshquic.Unary(func(context.Context, meshquic.NodeID, struct{}) (struct{}, error) {
		return struct{}{}, toWire(err)
	}))
	return func(ctx context.Context) error {
		if err := a.ep.Call(ctx, meshquic.PeerID(b.id), sub, struct{}{}, nil); err != nil {
			return fromRemote(err, b.name)
		}
		return nil
	}
}

// Knows reports whether a's transport has an address for b (membership
// can list b a moment before).
func Knows(a, b *Node) bool {
	_, ok := a.ep.PeerAddrOf(b.id)
	return ok
}
