package node

import (
	"context"
	"fmt"
	"time"
)

// Channels (issue 14): named channels homed on one member each
// (internal/channel.Home), outside and daemon publishers, daemon
// subscribers whose subscriptions live in their ledger and follow them
// across migrations. This file is the node's public face of them; the
// home side is channels_home.go, the subscriber side channels_sub.go.

// ChannelDef defines a channel. A restricted channel admits only
// subscribes and publishes that present a token whose chain starts at one
// of Trusted (64-hex ed25519 public keys).
type ChannelDef struct {
	Name       string   `json:"name"`
	Restricted bool     `json:"restricted,omitempty"`
	Trusted    []string `json:"trusted,omitempty"`
}

// ChannelInfo describes a channel as its home node sees it.
type ChannelInfo struct {
	Name       string   `json:"name"`
	Home       string   `json:"home"` // the home node's name
	Restricted bool     `json:"restricted"`
	Trusted    []string `json:"trusted,omitempty"`
	// Stream is the home's current delivery stream (16 hex digits); it
	// changes when the channel is re-homed.
	Stream string `json:"stream"`
	// Seq is the last message number on Stream.
	Seq         uint64              `json:"seq"`
	Published   uint64              `json:"published"`
	Delivered   uint64              `json:"delivered"`
	Duplicates  uint64              `json:"duplicates"`
	Full        uint64              `json:"full"` // publishes refused because a queue was full
	Subscribers []ChannelSubscriber `json:"subscribers"`
}

// ChannelSubscriber is one subscriber in ChannelInfo.
type ChannelSubscriber struct {
	Daemon    string `json:"daemon"` // id, 16 hex digits
	Node      string `json:"node"`   // where the home delivers to
	Queued    int    `json:"queued"` // undelivered, including in flight
	InFlight  int    `json:"in_flight"`
	Delivered uint64 `json:"delivered"`
}

// SubscriptionInfo is one entry of a daemon's ledger.
type SubscriptionInfo struct {
	Channel string `json:"channel"`
	Daemon  string `json:"daemon"`
	// Sub is the subscription's id at the channel's home (decimal), ""
	// while the node has not yet heard it back after a restart or move.
	Sub   string `json:"sub,omitempty"`
	Token bool   `json:"token"` // subscribed with a permission token
}

// PublishRequest publishes payloads to a channel, in order.
type PublishRequest struct {
	Channel  string
	Payloads [][]byte
	// Token is a permission token in its text form (wasmesh-token-v1:…),
	// needed on a restricted channel; its subject is the publisher.
	Token []byte
	// Client and FirstID make the publish exactly-once across retries of
	// the whole request: payload i is the client's message FirstID+i, and
	// one already accepted is answered as a duplicate. Without a client the
	// node publishes under its own sequence (retries inside the node are
	// safe; a retried request is not).
	Client  string
	FirstID uint64
	// Timeout bounds how long a full channel may block the publish
	// (default 10 s); past it the request fails with ErrChannelFull.
	Timeout time.Duration
}

// PublishResult is what a publish did.
type PublishResult struct {
	Channel    string `json:"channel"`
	Home       string `json:"home"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	// FirstSeq and LastSeq are the channel seqs given to the accepted
	// messages (0 when none was).
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

var errChannelsTODO = fmt.Errorf("%w: channels are not wired yet", ErrUnavailable)

// CreateChannel defines a channel at its home. Creating it again with the
// same definition is a no-op; a different one is ErrChannelExists.
func (n *Node) CreateChannel(ctx context.Context, def ChannelDef) (ChannelInfo, error) {
	return ChannelInfo{}, errChannelsTODO
}

// Channels lists every channel of the cluster, by name.
func (n *Node) Channels(ctx context.Context) ([]ChannelInfo, error) {
	return nil, errChannelsTODO
}

// Subscribe subscribes a daemon (id or name, anywhere) to a channel; the
// ledger records it only once the channel's home accepted it.
func (n *Node) Subscribe(ctx context.Context, ref, channel string, token []byte) (SubscriptionInfo, error) {
	return SubscriptionInfo{}, errChannelsTODO
}

// Unsubscribe removes a daemon's subscription.
func (n *Node) Unsubscribe(ctx context.Context, ref, channel string) error {
	return errChannelsTODO
}

// Subscriptions lists a daemon's ledger.
func (n *Node) Subscriptions(ctx context.Context, ref string) ([]SubscriptionInfo, error) {
	return nil, errChannelsTODO
}

// Publish publishes to a channel from outside the mesh.
func (n *Node) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	return PublishResult{}, errChannelsTODO
}
