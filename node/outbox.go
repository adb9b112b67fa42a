package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/engine"
)

// Retry pacing of a message whose delivery failed: it is never dropped, so
// a target that is gone for good costs one attempt per outboxMaxBackoff.
const (
	outboxMinBackoff = 5 * time.Millisecond
	outboxMaxBackoff = 2 * time.Second
	// outboxRescan bounds how long a wake-up that raced a lane's exit can
	// go unnoticed; normally OnSends wakes the deliverer at once.
	outboxRescan = time.Second
)

// lane is one (sender, target) pair: its messages go one at a time in seq
// order, so the target's horizon (an id at or below one applied is a
// duplicate) never skips one. Different lanes run independently.
//
// A daemon's publishes to one channel are a lane too (channel set, target
// 0): they go to the channel's home one at a time, in seq order, each
// naming the one before (Prev), so the home accepts each exactly once.
type lane struct {
	sender, target uint64
	channel        string
}

// deliverer delivers the outboxes of this node's daemons (engine send
// import) as exactly-once events. A daemon that migrates away takes its
// outbox along in the snapshot and its lanes here stop; the target node's
// deliverer starts them again after adoption. A message both sides send
// is applied once: the second is answered Duplicate.
type deliverer struct {
	n    *Node
	kick chan struct{}

	mu      sync.Mutex
	lanes   map[lane]bool
	unknown map[lane]bool // lanes failing since their last success, logged once

	retries  prometheus.Counter
	notFound prometheus.Counter
}

func newDeliverer(n *Node) *deliverer {
	return &deliverer{
		n: n, kick: make(chan struct{}, 1), lanes: map[lane]bool{}, unknown: map[lane]bool{},
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_outbox_retries_total", Help: "Daemon-to-daemon message deliveries that failed and will be retried.",
		}),
		notFound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_outbox_unknown_targets_total", Help: "Message lanes whose target daemon was not found (retried, never dropped).",
		}),
	}
}

// collectors are the deliverer's metrics for the node's registry.
func (o *deliverer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.retries, o.notFound,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_outbox_pending", Help: "Undelivered daemon-to-daemon messages of the daemons on this node."},
			func() float64 {
				total := 0
				for _, d := range o.n.rt.Daemons() {
					total += d.OutboxLen()
				}
				return float64(total)
			}),
	}
}

// wake asks for a scan; it never blocks (engine.Config.OnSends calls it).
func (o *deliverer) wake(uint64) {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// run scans on every wake-up and every outboxRescan until ctx ends.
func (o *deliverer) run(ctx context.Context) {
	t := time.NewTicker(outboxRescan)
	defer t.Stop()
	for {
		o.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
		case <-t.C:
		}
	}
}

// scan starts a lane for every (sender, target) with pending messages that
// has none running.
func (o *deliverer) scan(ctx context.Context) {
	for _, d := range o.n.rt.Daemons() {
		if d.OutboxLen() == 0 {
			continue
		}
		ls := make([]lane, 0, 4)
		for _, target := range d.SendTargets() {
			ls = append(ls, lane{sender: d.Origin(), target: target})
		}
		for _, ch := range d.PublishChannels() {
			ls = append(ls, lane{sender: d.Origin(), channel: ch})
		}
		for _, l := range ls {
			o.mu.Lock()
			start := !o.lanes[l]
			if start {
				o.lanes[l] = true
			}
			o.mu.Unlock()
			if start {
				o.n.wg.Add(1)
				go func() {
					defer o.n.wg.Done()
					o.runLane(ctx, d, l)
				}()
			}
		}
	}
}

// next is the oldest pending message of the lane.
func next(d *engine.Daemon, l lane) (engine.Send, bool) {
	var p []engine.Send
	if l.channel != "" {
		p = d.PendingPublishes(l.channel, 1)
	} else {
		p = d.PendingSendsTo(l.target, 1)
	}
	if len(p) == 1 {
		return p[0], true
	}
	return engine.Send{}, false
}

// runLane delivers the lane's messages in seq order until none is left or
// the sender no longer runs here.
func (o *deliverer) runLane(ctx context.Context, d *engine.Daemon, l lane) {
	backoff := outboxMinBackoff
	for {
		s, ok := next(d, l)
		if !ok || !o.local(d) || ctx.Err() != nil {
			// The exit is decided under mu, against a last look at the
			// outbox: a send committed before it is seen here, one
			// committed after it wakes a scan that finds the lane free.
			o.mu.Lock()
			if _, again := next(d, l); again && o.local(d) && ctx.Err() == nil {
				o.mu.Unlock()
				continue
			}
			delete(o.lanes, l)
			o.mu.Unlock()
			return
		}
		var err error
		if l.channel != "" {
			// Publishes go a batch at a time: one round trip to the home
			// for up to chanBatch of them, accepted in order.
			batch := d.PendingPublishes(l.channel, chanBatch)
			batch = batch[:fitBatch(len(batch), func(i int) int { return len(batch[i].Payload) })]
			var done int
			done, err = o.publishBatch(ctx, d, batch)
			for _, p := range batch[:done] {
				d.SentDelivered(p.Seq)
			}
			if done < len(batch) {
				s = batch[done]
			}
		} else {
			err = o.deliver(ctx, d, s)
		}
		if err == nil {
			if l.channel == "" {
				d.SentDelivered(s.Seq)
			}
			backoff = outboxMinBackoff
			o.mu.Lock()
			delete(o.unknown, l)
			o.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			continue // exits above
		}
		o.retries.Inc()
		// Logged once per failing streak of a lane: a target that is gone,
		// or whose guest keeps failing the message, must not flood the log.
		o.mu.Lock()
		first := !o.unknown[l]
		o.unknown[l] = true
		o.mu.Unlock()
		switch {
		case !first:
		case l.channel != "":
			o.n.log.Warn("daemon's publish not accepted by the channel; retrying", "daemon", d.ID(),
				"channel", l.channel, "seq", s.Seq, "err", err)
		case errors.Is(err, ErrDaemonNotFound):
			o.notFound.Inc()
			o.n.log.Warn("message target not found; retrying until it appears", "daemon", d.ID(),
				"target", abi.FormatOrigin(l.target), "seq", s.Seq, "err", err)
		default:
			o.n.log.Warn("message delivery failed; retrying", "daemon", d.ID(),
				"target", abi.FormatOrigin(l.target), "seq", s.Seq, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, outboxMaxBackoff)
	}
}

// local reports whether d is still the daemon this node runs for its
// origin: after a migration away (or a stop) its lanes end.
func (o *deliverer) local(d *engine.Daemon) bool {
	cur, err := o.n.rt.Daemon(d.Origin())
	return err == nil && cur == d && d.Usable() == nil
}

// deliver sends one message as an exactly-once event from the sender.
// Under DurabilitySync the sending event is made durable first: a message
// must never arrive from an event that a crash of this node could still
// undo. (DurabilityInterval accepts that window for events, and so here.)
func (o *deliverer) deliver(ctx context.Context, d *engine.Daemon, s engine.Send) error {
	if w := o.n.wal; w != nil {
		if err := w.Sync(ctx); err != nil {
			return err
		}
	}
	_, err := o.n.send(ctx, abi.FormatOrigin(s.Target), input{payload: s.Payload, sender: d.Origin(), seq: s.Seq, once: true})
	return err
}

// publishBatch offers a daemon's publishes to one channel (oldest first)
// to the channel's home, under the daemon's identity: a token in its
// ledger entry for the channel (a subscribe and publish grant) is
// presented for a restricted channel. It returns how many were accepted
// (or answered Duplicate), in order, and why the next one was not.
func (o *deliverer) publishBatch(ctx context.Context, d *engine.Daemon, batch []engine.Send) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	if w := o.n.wal; w != nil {
		if err := w.Sync(ctx); err != nil {
			return 0, err
		}
	}
	name := batch[0].Channel
	var tok []byte
	if e, ok := ledgerEntry(d, name); ok {
		tok = e.Token
	}
	msgs := make([]channel.Message, len(batch))
	for i, s := range batch {
		msgs[i] = channel.PublishMsg{Channel: name, Pub: channel.Publication{
			Publisher: d.Origin(), Seq: s.Seq, Prev: s.Prev, Subject: d.EntityID(), Token: tok, Payload: s.Payload}}
	}
	ctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
	defer cancel()
	answers, _, err := o.n.callHomeBatch(ctx, name, msgs)
	if err != nil {
		return 0, err
	}
	for i, a := range answers {
		if err := chanErr(a); err != nil {
			return i, err
		}
	}
	if len(answers) < len(batch) {
		return len(answers), fmt.Errorf("%w: channel %q: the home took %d of %d", ErrUnavailable, name, len(answers), len(batch))
	}
	return len(answers), nil
}
