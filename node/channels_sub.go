package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// The subscriber side of channels: deliveries arriving for the daemons on
// this node. A delivery becomes an exactly-once event from its stream
// (Sender = the stream id, Seq = its seq), so the daemon's horizon, which
// is journaled and travels in every snapshot, is what dedupes it; the
// delivery's Prev is checked against the same horizon first, so a
// delivery that overtook an earlier one waits for it (README of
// internal/channel: "Why each message arrives exactly once").

// resubscribeEvery re-asserts every local daemon's subscriptions at their
// homes: it learns the subscription ids after a restart, moves
// subscriptions whose home still points at an old node, and restores
// subscriptions at a home that lost them (a crashed home).
const resubscribeEvery = 30 * time.Second

type chanSubs struct {
	n  *Node
	mu sync.Mutex
	// ids are the subscription ids homes answered, per (channel, origin):
	// a delivery must carry the current one.
	ids map[dlaneKey]uint64
	// busy counts subscription changes in progress, during which a
	// delivery for the pair is neither accepted nor called stale.
	busy map[dlaneKey]int
	// asked keeps a resubscribe of a pair from being started twice.
	asked map[dlaneKey]bool
	// kick asks for a sweep soon (a member came or went: homes moved).
	kick chan struct{}

	received *prometheus.CounterVec
}

func newChanSubs(n *Node) *chanSubs {
	return &chanSubs{n: n, ids: map[dlaneKey]uint64{}, busy: map[dlaneKey]int{}, asked: map[dlaneKey]bool{}, kick: make(chan struct{}, 1),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmesh_channel_received_total",
			Help: "Channel deliveries received for the daemons on this node, by what was done with them.",
		}, []string{"result"}),
	}
}

func (s *chanSubs) set(k dlaneKey, id uint64) {
	s.mu.Lock()
	s.ids[k] = id
	s.mu.Unlock()
}

func (s *chanSubs) forget(k dlaneKey) {
	s.mu.Lock()
	delete(s.ids, k)
	s.mu.Unlock()
}

func (s *chanSubs) get(k dlaneKey) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[k]
	return id, ok
}

// hold marks a subscription change of k in progress until the returned
// func runs.
func (s *chanSubs) hold(k dlaneKey) func() {
	s.mu.Lock()
	s.busy[k]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.busy[k]--; s.busy[k] <= 0 {
			delete(s.busy, k)
		}
		s.mu.Unlock()
	}
}

func ledgerEntry(d *engine.Daemon, name string) (snapshot.Subscription, bool) {
	for _, e := range d.Ledger() {
		if e.Channel == name {
			return e, true
		}
	}
	return snapshot.Subscription{}, false
}

// accept hands a batch of deliveries to local daemons in order and says
// what became of each. Acks are given only once the events are durable.
func (s *chanSubs) accept(ctx context.Context, ds []channel.Deliver) []deliverVerdict {
	n := s.n
	out := make([]deliverVerdict, len(ds))
	applied := false
	for i, dl := range ds {
		k := dlaneKey{dl.Channel, dl.To}
		d, err := n.rt.Daemon(dl.To)
		if err != nil || d.Usable() != nil {
			v := deliverVerdict{V: verdictNotHere}
			if _, r, ok := n.movedRef(abi.FormatOrigin(dl.To)); ok {
				v.Moved = r.Node.String()
			}
			out[i] = v
			s.received.WithLabelValues("not_here").Inc()
			continue
		}
		id, known := s.get(k)
		if !known {
			s.mu.Lock()
			busy := s.busy[k] > 0
			s.mu.Unlock()
			_, inLedger := ledgerEntry(d, dl.Channel)
			switch {
			case busy:
				out[i] = deliverVerdict{V: verdictRetry}
			case inLedger:
				// Subscribed, but its id not heard back yet (restart, or
				// just arrived by migration): ask, and have it resent.
				out[i] = deliverVerdict{V: verdictRetry}
				s.resubscribeAsync(d, dl.Channel)
			default:
				out[i] = deliverVerdict{V: verdictGone}
				s.received.WithLabelValues("not_subscribed").Inc()
				continue
			}
			s.received.WithLabelValues("retry").Inc()
			continue
		}
		switch channel.Judge(dl, d.HorizonOf(dl.Stream), id) {
		case channel.Stale, channel.Again:
			out[i] = deliverVerdict{V: verdictAck}
			s.received.WithLabelValues("duplicate").Inc()
			continue
		case channel.Gap:
			out[i] = deliverVerdict{V: verdictRetry}
			s.received.WithLabelValues("gap").Inc()
			continue
		}
		ev := engine.Event{Sender: dl.Stream, Seq: dl.Seq, Payload: dl.Payload, Once: true}
		_, err = n.runLocal(ctx, d, ev, false)
		switch {
		case err == nil, errors.Is(err, engine.ErrDuplicateEvent):
			out[i] = deliverVerdict{V: verdictAck}
			applied = true
			s.received.WithLabelValues("applied").Inc()
		default:
			// The rest of this daemon's batch would be a gap now.
			out[i] = deliverVerdict{V: verdictRetry}
			s.received.WithLabelValues("failed").Inc()
			n.log.Debug("channel delivery not applied; the home resends it", "daemon", d.ID(), "channel", dl.Channel, "seq", dl.Seq, "err", err)
		}
	}
	if applied && n.wal != nil {
		if err := n.wal.Sync(ctx); err != nil {
			for i := range out {
				if out[i].V == verdictAck {
					out[i].V = verdictRetry
				}
			}
		}
	}
	return out
}

// resubscribeAsync re-asserts one subscription in the background.
func (s *chanSubs) resubscribeAsync(d *engine.Daemon, name string) {
	k := dlaneKey{name, d.Origin()}
	s.mu.Lock()
	if s.asked[k] {
		s.mu.Unlock()
		return
	}
	s.asked[k] = true
	s.mu.Unlock()
	s.n.wg.Add(1)
	go func() {
		defer s.n.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.asked, k)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(s.n.ctx, chanCallTimeout)
		defer cancel()
		if err := s.resubscribe(ctx, d, name); err != nil {
			s.n.log.Warn("subscription not re-asserted; retrying later", "daemon", d.ID(), "channel", name, "err", err)
		}
	}()
}

// resubscribe subscribes a daemon again with its ledger entry: the home
// keeps the subscription and its queue (acting as a move to this node)
// and answers its id.
func (s *chanSubs) resubscribe(ctx context.Context, d *engine.Daemon, name string) error {
	e, ok := ledgerEntry(d, name)
	if !ok {
		return nil
	}
	msg := channel.SubscribeMsg{Channel: name, Sub: channel.Subscription{Origin: d.Origin(), Entity: d.EntityID(), Node: s.n.id, Token: e.Token}}
	ans, _, err := s.n.callHome(ctx, name, msg)
	if err == nil {
		err = chanErr(ans)
	}
	if err != nil {
		return err
	}
	s.set(dlaneKey{name, d.Origin()}, ans.Seq)
	return nil
}

// resubscribeAll re-asserts every subscription of a daemon (after it
// arrived by migration, or at start); per-entry failures are returned
// by channel, never fatal.
func (s *chanSubs) resubscribeAll(ctx context.Context, d *engine.Daemon) map[string]error {
	failed := map[string]error{}
	for _, e := range d.Ledger() {
		if err := s.resubscribe(ctx, d, e.Channel); err != nil {
			failed[e.Channel] = err
		}
	}
	return failed
}

// sweep re-asserts the subscriptions of every local daemon, now and every
// resubscribeEvery, until ctx ends.
func (s *chanSubs) sweep(ctx context.Context) {
	t := time.NewTicker(resubscribeEvery)
	defer t.Stop()
	for {
		for _, d := range s.n.rt.Daemons() {
			if len(d.Ledger()) == 0 {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*chanCallTimeout)
			for ch, err := range s.resubscribeAll(cctx, d) {
				s.n.log.Warn("subscription not re-asserted; retrying later", "daemon", d.ID(), "channel", ch, "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			// Let a burst of membership events settle first.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}
