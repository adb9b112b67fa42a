package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
	"github.com/wasmesh/wasmesh/internal/token"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
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
	// Timeout bounds how long a full channel may stall the publish
	// (default 10 s; it restarts whenever a message is accepted); past it
	// the request fails with ErrChannelFull.
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

type chanOpRequest struct {
	Op      uint8  `msgpack:"o"`
	Ref     string `msgpack:"r"`
	Channel string `msgpack:"c"`
	Token   []byte `msgpack:"t"`
}

type chanOpResponse struct {
	Subs []SubscriptionInfo `msgpack:"s"`
}

const (
	opSubscribe uint8 = iota + 1
	opUnsubscribe
	opSubscriptions
)

type chanListResponse struct {
	Channels []ChannelInfo `msgpack:"c"`
}

// defaultPublishTimeout bounds how long a full channel blocks a publish.
const defaultPublishTimeout = 10 * time.Second

func (n *Node) serveChannels() {
	n.chHome.serve()
	n.chDefs.serve()
	n.ep.Handle(subChanList, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, _ struct{}) (chanListResponse, error) {
		return chanListResponse{Channels: n.homedChannels()}, nil
	}))
	n.ep.Handle(subChanOps, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req chanOpRequest) (chanOpResponse, error) {
		d, ok := n.findLocal(req.Ref)
		if !ok {
			return chanOpResponse{}, toWire(fmt.Errorf("%w: %w", meshquic.ErrNotHosted, ErrDaemonNotFound))
		}
		var (
			out chanOpResponse
			err error
		)
		switch req.Op {
		case opSubscribe:
			var s SubscriptionInfo
			s, err = n.subscribeLocal(ctx, d, req.Channel, req.Token)
			out.Subs = []SubscriptionInfo{s}
		case opUnsubscribe:
			err = n.unsubscribeLocal(ctx, d, req.Channel)
		case opSubscriptions:
			out.Subs = n.subscriptionsOf(d)
		default:
			err = fmt.Errorf("%w: channel operation %d", ErrBadRequest, req.Op)
		}
		return out, toWire(err)
	}))
}

// startChannels runs the home's clock and the subscription sweep.
func (n *Node) startChannels() {
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.chHome.run(n.ctx) }()
	go func() {
		defer n.wg.Done()
		// Peers first: a sweep before the member set is known would ask
		// the wrong homes.
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(handoffGrace):
		}
		n.chSubs.sweep(n.ctx)
	}()
}

func toDefinition(def ChannelDef) (channel.Definition, error) {
	d := channel.Definition{Name: def.Name, Restricted: def.Restricted}
	if err := channel.ValidName(def.Name); err != nil {
		return d, wrap(ErrBadRequest, err)
	}
	for _, t := range def.Trusted {
		b, err := hex.DecodeString(t)
		if err != nil || len(b) != 32 {
			return d, fmt.Errorf("%w: trusted issuer %s is not a 64-hex-digit ed25519 public key", ErrBadRequest, abi.Echo(t))
		}
		d.Trusted = append(d.Trusted, [32]byte(b))
	}
	if err := d.Validate(); err != nil {
		return d, wrap(ErrBadRequest, err)
	}
	return d, nil
}

func (n *Node) infoOf(st channel.Stats) ChannelInfo {
	ci := ChannelInfo{
		Name: st.Definition.Name, Home: n.peerName(st.Home), Restricted: st.Definition.Restricted,
		Stream: abi.FormatOrigin(st.Stream), Seq: st.Seq,
		Published: st.Published, Delivered: st.Delivered, Duplicates: st.Duplicates, Full: st.Full,
		Subscribers: []ChannelSubscriber{},
	}
	for _, k := range st.Definition.Trusted {
		ci.Trusted = append(ci.Trusted, hex.EncodeToString(k[:]))
	}
	for _, s := range st.Subscribers {
		ci.Subscribers = append(ci.Subscribers, ChannelSubscriber{
			Daemon: abi.FormatOrigin(s.Origin), Node: n.peerName(s.Node), Queued: s.Queued, InFlight: s.InFlight, Delivered: s.Delivered,
		})
	}
	return ci
}

// homedChannels are the channels this node is home to.
func (n *Node) homedChannels() []ChannelInfo {
	n.chHome.mu.Lock()
	list := n.chHome.m.List()
	n.chHome.mu.Unlock()
	out := make([]ChannelInfo, 0, len(list))
	for _, st := range list {
		out = append(out, n.infoOf(st))
	}
	return out
}

// CreateChannel defines a channel at its home. Creating it again with the
// same definition is a no-op; a different one is ErrChannelExists.
func (n *Node) CreateChannel(ctx context.Context, def ChannelDef) (ChannelInfo, error) {
	d, err := toDefinition(def)
	if err != nil {
		return ChannelInfo{}, err
	}
	ans, home, err := n.callHome(ctx, d.Name, channel.CreateMsg{Def: d})
	if err == nil {
		err = chanErr(ans)
	}
	if err != nil {
		return ChannelInfo{}, err
	}
	n.chDefs.learn(d)
	n.chHome.membersChanged() // pushes the definition to the members now
	ci := ChannelInfo{Name: d.Name, Home: n.peerName(home), Restricted: d.Restricted, Trusted: def.Trusted, Subscribers: []ChannelSubscriber{}}
	if all, err := n.Channels(ctx); err == nil {
		for _, c := range all {
			if c.Name == d.Name {
				ci = c
			}
		}
	}
	return ci, nil
}

// Channels lists every channel of the cluster, by name, as their homes
// report them. A defined channel no member homes right now (its home left
// and no one used it since) is listed with its would-be home and no state.
func (n *Node) Channels(ctx context.Context) ([]ChannelInfo, error) {
	byName := map[string]ChannelInfo{}
	add := func(cs []ChannelInfo) {
		for _, c := range cs {
			if old, ok := byName[c.Name]; ok && old.Home == n.peerName(n.homeOf(c.Name)) {
				continue // two homes while re-homing: the current one wins
			}
			byName[c.Name] = c
		}
	}
	add(n.homedChannels())
	ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, p := range n.peers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp chanListResponse
			if err := n.ep.Call(ctx, p.peer(), subChanList, struct{}{}, &resp); err != nil {
				return
			}
			mu.Lock()
			add(resp.Channels)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, d := range n.chDefs.all() {
		if _, ok := byName[d.Name]; !ok {
			ci := n.infoOf(channel.Stats{Definition: d, Home: n.homeOf(d.Name)})
			ci.Stream = ""
			byName[d.Name] = ci
		}
	}
	out := make([]ChannelInfo, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, byName[name])
	}
	return out, nil
}

// parseTokenText turns a token's text form into the bytes a home
// verifies; empty is no token.
func parseTokenText(text []byte) ([]byte, token.Token, error) {
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil, token.Token{}, nil
	}
	t, err := token.Parse(text)
	if err != nil {
		return nil, token.Token{}, fmt.Errorf("%w: permission token: %w", ErrBadRequest, err)
	}
	return t.Encode(), t, nil
}

// Subscribe subscribes a daemon (id or name, anywhere) to a channel; the
// ledger records it only once the channel's home accepted it.
func (n *Node) Subscribe(ctx context.Context, ref, name string, tok []byte) (SubscriptionInfo, error) {
	if err := channel.ValidName(name); err != nil {
		return SubscriptionInfo{}, wrap(ErrBadRequest, err)
	}
	bin, _, err := parseTokenText(tok)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	if d, ok := n.findLocal(ref); ok {
		return n.subscribeLocal(ctx, d, name, bin)
	}
	var resp chanOpResponse
	if err := n.chanOp(ctx, ref, chanOpRequest{Op: opSubscribe, Ref: ref, Channel: name, Token: bin}, &resp); err != nil {
		return SubscriptionInfo{}, err
	}
	if len(resp.Subs) != 1 {
		return SubscriptionInfo{}, fmt.Errorf("%w: %d subscriptions in a subscribe answer", ErrBadRequest, len(resp.Subs))
	}
	return resp.Subs[0], nil
}

// chanOp runs a subscription operation on the node hosting ref.
func (n *Node) chanOp(ctx context.Context, ref string, req chanOpRequest, resp *chanOpResponse) error {
	if f, ok := n.findFailed(ref); ok {
		return f.refusal("change the subscriptions of")
	}
	loc, err := n.locate(ctx, ref)
	if err != nil {
		return err
	}
	if d, ok := n.localAt(loc); ok {
		req.Ref = d.ID()
	}
	if err := n.ep.Call(ctx, loc.node.peer(), subChanOps, req, resp); err != nil {
		return fromRemote(err, loc.node.String())
	}
	return nil
}

func (n *Node) subscribeLocal(ctx context.Context, d *engine.Daemon, name string, tok []byte) (SubscriptionInfo, error) {
	if err := channel.ValidName(name); err != nil {
		return SubscriptionInfo{}, wrap(ErrBadRequest, err)
	}
	k := dlaneKey{name, d.Origin()}
	defer n.chSubs.hold(k)()
	msg := channel.SubscribeMsg{Channel: name, Sub: channel.Subscription{Origin: d.Origin(), Entity: d.EntityID(), Node: n.id, Token: tok}}
	ans, _, err := n.callHome(ctx, name, msg)
	if err == nil {
		err = chanErr(ans)
	}
	if err != nil {
		return SubscriptionInfo{}, fmt.Errorf("subscribe %s to %s: %w", d.ID(), name, err)
	}
	if err := d.SetLedgerEntry(snapshot.Subscription{Channel: name, Token: tok}); err != nil {
		n.unsubscribeAtHome(ctx, d.Origin(), name)
		return SubscriptionInfo{}, fmt.Errorf("%w: subscribe %s to %s: %w", ErrTooLarge, d.ID(), name, err)
	}
	n.chSubs.set(k, ans.Seq)
	if err := n.checkpoint(ctx, d, true); err != nil {
		return SubscriptionInfo{}, fmt.Errorf("%w: %s is subscribed to %s, but its ledger is not on disk yet (a checkpoint will retry): %w", ErrUnavailable, d.ID(), name, err)
	}
	return SubscriptionInfo{Channel: name, Daemon: d.ID(), Sub: strconv.FormatUint(ans.Seq, 10), Token: len(tok) > 0}, nil
}

// Unsubscribe removes a daemon's subscription. The ledger entry goes
// first: if the home's copy then outlives a lost request, the next
// delivery finds no ledger entry and the home drops the subscription.
func (n *Node) Unsubscribe(ctx context.Context, ref, name string) error {
	if err := channel.ValidName(name); err != nil {
		return wrap(ErrBadRequest, err)
	}
	if d, ok := n.findLocal(ref); ok {
		return n.unsubscribeLocal(ctx, d, name)
	}
	var resp chanOpResponse
	return n.chanOp(ctx, ref, chanOpRequest{Op: opUnsubscribe, Ref: ref, Channel: name}, &resp)
}

func (n *Node) unsubscribeLocal(ctx context.Context, d *engine.Daemon, name string) error {
	k := dlaneKey{name, d.Origin()}
	defer n.chSubs.hold(k)()
	if !d.RemoveLedgerEntry(name) {
		return fmt.Errorf("%w: %s is not subscribed to %s", ErrNotSubscribed, d.ID(), name)
	}
	n.chSubs.forget(k)
	if err := n.checkpoint(ctx, d, true); err != nil {
		n.log.Warn("unsubscribed, but the ledger is not on disk yet (a checkpoint will retry)", "daemon", d.ID(), "channel", name, "err", err)
	}
	n.unsubscribeAtHome(ctx, d.Origin(), name)
	return nil
}

func (n *Node) unsubscribeAtHome(ctx context.Context, origin uint64, name string) {
	ctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
	defer cancel()
	ans, _, err := n.callHome(ctx, name, channel.UnsubscribeMsg{Channel: name, Origin: origin, From: n.id})
	if err == nil {
		err = chanErr(ans)
	}
	if err != nil && !errors.Is(err, ErrNotSubscribed) && !errors.Is(err, ErrChannelNotFound) {
		n.log.Warn("unsubscribe not confirmed by the channel's home; its next delivery will drop it", "daemon", abi.FormatOrigin(origin), "channel", name, "err", err)
	}
}

// Subscriptions lists a daemon's ledger.
func (n *Node) Subscriptions(ctx context.Context, ref string) ([]SubscriptionInfo, error) {
	if d, ok := n.findLocal(ref); ok {
		return n.subscriptionsOf(d), nil
	}
	var resp chanOpResponse
	if err := n.chanOp(ctx, ref, chanOpRequest{Op: opSubscriptions, Ref: ref}, &resp); err != nil {
		return nil, err
	}
	return nonNilSlice(resp.Subs), nil
}

func nonNilSlice[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (n *Node) subscriptionsOf(d *engine.Daemon) []SubscriptionInfo {
	out := []SubscriptionInfo{}
	for _, e := range d.Ledger() {
		si := SubscriptionInfo{Channel: e.Channel, Daemon: d.ID(), Token: len(e.Token) > 0}
		if id, ok := n.chSubs.get(dlaneKey{e.Channel, d.Origin()}); ok {
			si.Sub = strconv.FormatUint(id, 10)
		}
		out = append(out, si)
	}
	return out
}

// Publish publishes to a channel from outside the mesh, in order, each
// message exactly once (see PublishRequest for retries of the request).
func (n *Node) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	if err := channel.ValidName(req.Channel); err != nil {
		return PublishResult{}, wrap(ErrBadRequest, err)
	}
	if len(req.Payloads) == 0 {
		return PublishResult{}, fmt.Errorf("%w: nothing to publish", ErrBadRequest)
	}
	for i, p := range req.Payloads {
		if len(p) > channel.MaxPayloadLen {
			return PublishResult{}, fmt.Errorf("%w: payload %d is %d bytes (max %d)", ErrTooLarge, i+1, len(p), channel.MaxPayloadLen)
		}
	}
	bin, tok, err := parseTokenText(req.Token)
	if err != nil {
		return PublishResult{}, err
	}
	timeout := cmp.Or(req.Timeout, defaultPublishTimeout)
	res := PublishResult{Channel: req.Channel, Home: n.peerName(n.homeOf(req.Channel))}
	pubs := make([]channel.Publication, len(req.Payloads))
	for i, p := range req.Payloads {
		pubs[i] = channel.Publication{Subject: tok.Subject, Token: bin, Payload: p}
	}
	if req.Client != "" {
		publisher, err := ClientSender(req.Client)
		if err != nil {
			return res, err
		}
		if req.FirstID == 0 {
			return res, fmt.Errorf("%w: client message ids start at 1", ErrBadRequest)
		}
		for i := range pubs {
			pubs[i].Publisher, pubs[i].Seq = publisher, req.FirstID+uint64(i)
			pubs[i].Prev = pubs[i].Seq - 1
		}
		done, err := n.publishAll(ctx, req.Channel, pubs, timeout, &res)
		if err != nil {
			return res, fmt.Errorf("publish %d of %d to %s: %w", done+1, len(pubs), req.Channel, err)
		}
		return res, nil
	}
	seqr, err := n.chPubs.acquire(ctx, req.Channel)
	if err != nil {
		return res, err
	}
	defer n.chPubs.release(req.Channel, seqr)
	for i := range pubs {
		pubs[i].Publisher, pubs[i].Seq, pubs[i].Prev = seqr.id, seqr.last+uint64(i)+1, seqr.last+uint64(i)
	}
	done, err := n.publishAll(ctx, req.Channel, pubs, timeout, &res)
	if done > 0 {
		seqr.last = pubs[done-1].Seq
	}
	if err != nil {
		if !definite(err) {
			// The home may have accepted the next one: its seq is spent,
			// and the next request starts a new publisher sequence.
			seqr.renew()
		}
		return res, fmt.Errorf("publish %d of %d to %s: %w", done+1, len(pubs), req.Channel, err)
	}
	return res, nil
}

// definite reports whether a publish error is a refusal the home answered
// (nothing recorded), not a lost request that it may have accepted.
func definite(err error) bool {
	for _, s := range []error{ErrChannelFull, ErrNotPermitted, ErrTooLarge, ErrBadRequest, ErrChannelNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// publishAll offers messages in order, a batch per round trip, until each
// is accepted, one is refused, or the deadline passes; a full channel is
// retried until then. It returns how many were accepted (or duplicates).
func (n *Node) publishAll(ctx context.Context, name string, pubs []channel.Publication, timeout time.Duration, res *PublishResult) (int, error) {
	done := 0
	backoff := 5 * time.Millisecond
	// The timeout bounds a stall, not the whole run: it restarts whenever
	// a message is accepted.
	stalled := time.Now().Add(timeout)
	for done < len(pubs) {
		rest := pubs[done:]
		batch := rest[:fitBatch(len(rest), func(i int) int { return len(rest[i].Payload) })]
		msgs := make([]channel.Message, len(batch))
		for i, p := range batch {
			msgs[i] = channel.PublishMsg{Channel: name, Pub: p}
		}
		cctx, cancel := context.WithDeadline(ctx, stalled)
		answers, home, err := n.callHomeBatch(cctx, name, msgs)
		cancel()
		if err != nil {
			return done, err
		}
		res.Home = n.peerName(home)
		for _, ans := range answers {
			if err = chanErr(ans); err != nil {
				break
			}
			done++
			stalled = time.Now().Add(timeout)
			if ans.Outcome == channel.Duplicate {
				res.Duplicates++
				continue
			}
			res.Accepted++
			if res.FirstSeq == 0 {
				res.FirstSeq = ans.Seq
			}
			res.LastSeq = ans.Seq
		}
		switch {
		case err == nil:
			backoff = 5 * time.Millisecond
			continue
		case !errors.Is(err, ErrChannelFull):
			return done, err
		}
		if time.Now().After(stalled) {
			return done, fmt.Errorf("%w (still full after %s)", err, timeout)
		}
		select {
		case <-ctx.Done():
			return done, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	return done, nil
}

// chanPubs are the node's own publisher sequences, one per channel, for
// outside publishes without a client id. A channel's sequence is used by
// one publish request at a time (a Prev chain cannot interleave).
type chanPubs struct {
	mu   sync.Mutex
	seqs map[string]*pubSeq
}

type pubSeq struct {
	sem  chan struct{}
	id   uint64
	last uint64
}

func (s *pubSeq) renew() {
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.id, s.last = binary.LittleEndian.Uint64(b[:])|1, 0
}

func (c *chanPubs) acquire(ctx context.Context, name string) (*pubSeq, error) {
	c.mu.Lock()
	if c.seqs == nil {
		c.seqs = map[string]*pubSeq{}
	}
	s := c.seqs[name]
	if s == nil {
		s = &pubSeq{sem: make(chan struct{}, 1)}
		s.renew()
		c.seqs[name] = s
	}
	c.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for another publish to %s: %w", ErrUnavailable, name, ctx.Err())
	}
}

func (c *chanPubs) release(_ string, s *pubSeq) { <-s.sem }
