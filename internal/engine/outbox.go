package engine

import (
	"slices"
	"strings"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Bounds of a daemon's outbox: a send beyond them answers abi.SendFull and
// the guest may retry in a later event, once the node delivered some.
const (
	MaxOutboxEntries = 4096
	MaxOutboxBytes   = 8 << 20
	// MaxSendBytes caps one message; a larger one answers abi.SendTooLarge.
	MaxSendBytes = 1 << 20
	// MaxPublishChannels caps the distinct channels a daemon ever
	// published to: the outbox keeps each one's last publish for ever (the
	// channel's home orders a publisher's messages by it), so the table
	// must not grow with the guest's whims. A publish to one more channel
	// answers abi.PublishTooManyChannels.
	MaxPublishChannels = 256
)

// Send is one committed, undelivered message of a daemon's outbox: a
// message to a daemon (Channel == "") or a publish to a channel (Channel
// != "", Target == 0). Payload is shared with the outbox and must not be
// modified.
type Send struct {
	Seq    uint64 // the sender's outbound sequence, from 1, shared by both kinds
	Target uint64 // the target daemon's origin; 0 for a publish
	// Channel is the channel a publish goes to; empty for a send.
	Channel string
	// Prev is, for a publish, the Seq of this daemon's previous committed
	// publish to the same channel (0 for its first): the home accepts a
	// publish only after the one it names, so none is reordered or lost.
	Prev    uint64
	Payload []byte
}

// IsPublish tells a publish from a send.
func (s Send) IsPublish() bool { return s.Channel != "" }

// outbox is a daemon's committed sends and publishes, oldest first (under
// Daemon.mu).
type outbox struct {
	seq   uint64 // last sequence given out
	items []Send
	bytes int
	// lastPub is each channel's last committed publish seq, kept after
	// the publish is delivered: it is the next publish's Prev.
	lastPub map[string]uint64
	// evNew is the channels missing from lastPub that the running
	// event's queued publishes use: with lastPub, what the channel bound
	// counts. Reset with the event's sends.
	evNew map[string]struct{}
}

// room reports whether n more sends of b more bytes fit the bound.
func (o *outbox) room(n, b int) bool {
	return len(o.items)+n <= MaxOutboxEntries && o.bytes+b <= MaxOutboxBytes
}

// commit numbers an event's sends and queues them. It does not check the
// bound: the guest was told "queued" while the event ran (live, or as
// recorded for a replay), and a queued message is never dropped.
func (o *outbox) commit(sends []Send) {
	for _, s := range sends {
		o.seq++
		s.Seq = o.seq
		if s.IsPublish() {
			if o.lastPub == nil {
				o.lastPub = map[string]uint64{}
			}
			s.Prev = o.lastPub[s.Channel]
			o.lastPub[s.Channel] = s.Seq
		}
		o.items = append(o.items, s)
		o.bytes += len(s.Payload)
	}
}

// channelRoom reports whether a publish to ch keeps the daemon within
// MaxPublishChannels, counting the channels the running event added.
func (o *outbox) channelRoom(ch string) bool {
	if _, ok := o.lastPub[ch]; ok {
		return true
	}
	if _, ok := o.evNew[ch]; ok {
		return true
	}
	return len(o.lastPub)+len(o.evNew) < MaxPublishChannels
}

// queuedPublish notes the channel of a publish the running event queued.
func (o *outbox) queuedPublish(ch string) {
	if _, ok := o.lastPub[ch]; ok {
		return
	}
	if o.evNew == nil {
		o.evNew = map[string]struct{}{}
	}
	o.evNew[ch] = struct{}{}
}

func (o *outbox) remove(seq uint64) bool {
	i, ok := slices.BinarySearchFunc(o.items, seq, func(s Send, seq uint64) int {
		switch {
		case s.Seq < seq:
			return -1
		case s.Seq > seq:
			return 1
		}
		return 0
	})
	if !ok {
		return false
	}
	o.bytes -= len(o.items[i].Payload)
	o.items = slices.Delete(o.items, i, i+1)
	return true
}

// toSnapshot is nil for a daemon that never sent, so its snapshots keep
// the format version earlier builds read.
func (o *outbox) toSnapshot() *snapshot.Outbox {
	if o.seq == 0 && len(o.items) == 0 {
		return nil
	}
	s := &snapshot.Outbox{OutSeq: o.seq}
	if len(o.items) > 0 {
		s.Entries = make([]snapshot.OutboxEntry, len(o.items))
		for i, it := range o.items {
			// Committed payloads are never written again: sharing them
			// keeps a snapshot of a full outbox from copying 8 MiB.
			s.Entries[i] = snapshot.OutboxEntry{Seq: it.Seq, Target: it.Target, Channel: it.Channel, Prev: it.Prev, Payload: it.Payload}
		}
	}
	if len(o.lastPub) > 0 {
		s.LastPublish = make([]snapshot.PublishMark, 0, len(o.lastPub))
		for ch, seq := range o.lastPub {
			s.LastPublish = append(s.LastPublish, snapshot.PublishMark{Channel: ch, Seq: seq})
		}
		slices.SortFunc(s.LastPublish, func(a, b snapshot.PublishMark) int { return strings.Compare(a.Channel, b.Channel) })
	}
	return s
}

// fromSnapshot copies the payloads: a decoded snapshot aliases its input
// buffer, which the caller may reuse.
func (o *outbox) fromSnapshot(s *snapshot.Outbox) {
	*o = outbox{}
	if s == nil {
		return
	}
	o.seq = s.OutSeq
	for _, e := range s.Entries {
		o.items = append(o.items, Send{Seq: e.Seq, Target: e.Target, Channel: e.Channel, Prev: e.Prev, Payload: slices.Clone(e.Payload)})
		o.bytes += len(e.Payload)
	}
	if len(s.LastPublish) > 0 {
		o.lastPub = make(map[string]uint64, len(s.LastPublish))
		for _, m := range s.LastPublish {
			o.lastPub[m.Channel] = m.Seq
		}
	}
}

// PendingSends returns up to max undelivered messages, sends and
// publishes, oldest first (max <= 0: all). The node delivers them and
// acknowledges each with SentDelivered.
func (d *Daemon) PendingSends(max int) []Send {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.outbox.items)
	if max > 0 && max < n {
		n = max
	}
	return slices.Clone(d.outbox.items[:n])
}

// PendingSendsTo is PendingSends of the messages to one target: the
// order a deliverer must keep, without copying the rest of the outbox.
func (d *Daemon) PendingSendsTo(target uint64, max int) []Send {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Send
	for _, s := range d.outbox.items {
		if s.Target != target || s.IsPublish() {
			continue
		}
		out = append(out, s)
		if max > 0 && len(out) == max {
			break
		}
	}
	return out
}

// PendingPublishes is PendingSends of the publishes to one channel, oldest
// first: the order (and Prev chain) the channel's home accepts them in.
func (d *Daemon) PendingPublishes(channel string, max int) []Send {
	if channel == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Send
	for _, s := range d.outbox.items {
		if s.Channel != channel {
			continue
		}
		out = append(out, s)
		if max > 0 && len(out) == max {
			break
		}
	}
	return out
}

// PublishChannels lists the channels with undelivered publishes, sorted.
func (d *Daemon) PublishChannels() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, s := range d.outbox.items {
		if s.IsPublish() {
			out = append(out, s.Channel)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SendTargets lists the targets with undelivered messages (publishes
// excluded), each once, in the order of their oldest message.
func (d *Daemon) SendTargets() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	seen := map[uint64]bool{}
	for _, s := range d.outbox.items {
		if s.IsPublish() {
			continue
		}
		if !seen[s.Target] {
			seen[s.Target] = true
			out = append(out, s.Target)
		}
	}
	return out
}

// SentDelivered removes a delivered message, send or publish, from the
// outbox; false when no message has that seq (already removed). Messages
// to different targets or channels may be acknowledged in any order.
func (d *Daemon) SentDelivered(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outbox.remove(seq)
}

// OutboxLen is the number of undelivered messages.
func (d *Daemon) OutboxLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.outbox.items)
}

// OutSeq is the last outbound sequence number the daemon gave a message.
func (d *Daemon) OutSeq() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outbox.seq
}
