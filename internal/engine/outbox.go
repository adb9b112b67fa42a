package engine

import (
	"slices"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Bounds of a daemon's outbox: a send beyond them answers abi.SendFull and
// the guest may retry in a later event, once the node delivered some.
const (
	MaxOutboxEntries = 4096
	MaxOutboxBytes   = 8 << 20
	// MaxSendBytes caps one message; a larger one answers abi.SendTooLarge.
	MaxSendBytes = 1 << 20
)

// Send is one committed, undelivered message of a daemon's outbox.
// Payload is shared with the outbox and must not be modified.
type Send struct {
	Seq     uint64 // the sender's outbound sequence, from 1
	Target  uint64 // the target daemon's origin
	Payload []byte
}

// outbox is a daemon's committed sends, oldest first (under Daemon.mu).
type outbox struct {
	seq   uint64 // last sequence given out
	items []Send
	bytes int
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
		o.items = append(o.items, s)
		o.bytes += len(s.Payload)
	}
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
			s.Entries[i] = snapshot.OutboxEntry{Seq: it.Seq, Target: it.Target, Payload: it.Payload}
		}
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
		o.items = append(o.items, Send{Seq: e.Seq, Target: e.Target, Payload: slices.Clone(e.Payload)})
		o.bytes += len(e.Payload)
	}
}

// PendingSends returns up to max undelivered messages, oldest first
// (max <= 0: all). The node delivers them and acknowledges each with
// SentDelivered.
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
		if s.Target != target {
			continue
		}
		out = append(out, s)
		if max > 0 && len(out) == max {
			break
		}
	}
	return out
}

// SendTargets lists the targets with undelivered messages, each once, in
// the order of their oldest message.
func (d *Daemon) SendTargets() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	seen := map[uint64]bool{}
	for _, s := range d.outbox.items {
		if !seen[s.Target] {
			seen[s.Target] = true
			out = append(out, s.Target)
		}
	}
	return out
}

// SentDelivered removes a delivered message from the outbox; false when no
// message has that seq (already removed). Messages to different targets
// may be acknowledged in any order.
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
