package snapshot

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
)

// Outbox is a daemon's undelivered daemon-to-daemon messages (the send
// import) and channel publishes (the publish import), and its outbound
// sequence. It travels in the snapshot so that a message committed before
// a checkpoint or a migration is still delivered after it (FORMAT.md,
// "Outbox").
type Outbox struct {
	// OutSeq is the last sequence number the daemon gave a message; the
	// next one gets OutSeq+1.
	OutSeq uint64
	// Entries are the messages not yet acknowledged, seq strictly
	// increasing, each in 1..OutSeq.
	Entries []OutboxEntry
	// LastPublish is, per channel the daemon ever published to, the seq
	// of its last publish there (the next one's Prev), sorted strictly by
	// channel. It outlives the delivery of those publishes.
	LastPublish []PublishMark
}

// OutboxEntry is one undelivered message: a send (Channel empty) or a
// publish (Channel set, Target 0).
type OutboxEntry struct {
	Seq     uint64 // the sender's outbound sequence number
	Target  uint64 // the target daemon's origin; 0 for a publish
	Channel string // the channel of a publish; empty for a send
	Prev    uint64 // a publish's previous publish to Channel (0: first); 0 for a send
	Payload []byte
}

// PublishMark is a channel's last publish seq.
type PublishMark struct {
	Channel string
	Seq     uint64
}

// MaxChannelName is the longest channel name the format carries (its
// length is one byte).
const MaxChannelName = 255

const (
	// outboxFixed: out_seq u64, count u32.
	outboxFixed = 8 + 4
	// outboxEntryFixed: seq u64, target u64, payload length u32.
	outboxEntryFixed = 8 + 8 + 4
	// outboxEntryFixedV4 adds channel length u8 and prev u64.
	outboxEntryFixedV4 = outboxEntryFixed + 1 + 8
	// publishMarksFixed: mark count u16, after the entries (version 4).
	publishMarksFixed = 2
	// publishMarkFixed: name length u8, seq u64.
	publishMarkFixed = 1 + 8
)

// Clone returns a deep copy.
func (o *Outbox) Clone() *Outbox {
	if o == nil {
		return nil
	}
	c := &Outbox{OutSeq: o.OutSeq, LastPublish: slices.Clone(o.LastPublish)}
	if o.Entries != nil {
		c.Entries = make([]OutboxEntry, len(o.Entries))
		for i, e := range o.Entries {
			e.Payload = cloneBytes(e.Payload)
			c.Entries[i] = e
		}
	}
	return c
}

// hasPublishes reports whether the outbox needs version 4: version 3 has
// no room for a channel, and an outbox without one keeps encoding as it,
// so older readers still read it.
func (o *Outbox) hasPublishes() bool {
	if len(o.LastPublish) > 0 {
		return true
	}
	for i := range o.Entries {
		if o.Entries[i].Channel != "" {
			return true
		}
	}
	return false
}

func (o *Outbox) validate() error {
	// A sequence at its maximum would wrap on the next send and reuse a
	// number the target's horizon already holds: that message would be
	// answered as a duplicate and lost.
	if o.OutSeq == math.MaxUint64 {
		return invalid("outbox sequence %d would wrap on the next send", uint64(math.MaxUint64))
	}
	if uint64(len(o.Entries)) > math.MaxUint32 {
		return invalid("%d outbox entries do not fit in 32 bits", len(o.Entries))
	}
	if len(o.LastPublish) > math.MaxUint16 {
		return invalid("%d channels' last publishes do not fit in 16 bits", len(o.LastPublish))
	}
	for i, m := range o.LastPublish {
		if m.Channel == "" || len(m.Channel) > MaxChannelName {
			return invalid("last publish %d: channel name of %d bytes, want 1..%d", i, len(m.Channel), MaxChannelName)
		}
		if i > 0 && m.Channel <= o.LastPublish[i-1].Channel {
			return invalid("last publish channel %q after %q: must be strictly increasing", m.Channel, o.LastPublish[i-1].Channel)
		}
		if m.Seq == 0 || m.Seq > o.OutSeq {
			return invalid("last publish to %q has seq %d outside 1..%d", m.Channel, m.Seq, o.OutSeq)
		}
	}
	for i, e := range o.Entries {
		if e.Seq == 0 || e.Seq > o.OutSeq {
			return invalid("outbox entry %d has seq %d outside 1..%d", i, e.Seq, o.OutSeq)
		}
		if i > 0 && e.Seq <= o.Entries[i-1].Seq {
			return invalid("outbox seq %d after %d: entries must be strictly increasing", e.Seq, o.Entries[i-1].Seq)
		}
		if uint64(len(e.Payload)) > math.MaxUint32 {
			return invalid("outbox entry %d: payload too long", i)
		}
		if e.Channel == "" {
			// One encoding per snapshot: a send has no Prev to carry.
			if e.Prev != 0 {
				return invalid("outbox entry %d is a send with prev %d", i, e.Prev)
			}
			continue
		}
		if len(e.Channel) > MaxChannelName {
			return invalid("outbox entry %d: channel name of %d bytes, max %d", i, len(e.Channel), MaxChannelName)
		}
		if e.Target != 0 {
			return invalid("outbox entry %d publishes to %q with target %016x", i, e.Channel, e.Target)
		}
		if e.Prev >= e.Seq {
			return invalid("outbox entry %d: prev %d not before seq %d", i, e.Prev, e.Seq)
		}
		// The channel's last publish is this one or a later one: the
		// next publish must chain after every pending one.
		j, ok := slices.BinarySearchFunc(o.LastPublish, e.Channel, func(m PublishMark, ch string) int { return strings.Compare(m.Channel, ch) })
		if !ok || o.LastPublish[j].Seq < e.Seq {
			return invalid("outbox entry %d publishes to %q at seq %d, after the channel's last publish", i, e.Channel, e.Seq)
		}
	}
	return nil
}

func (o *Outbox) encodedSize() int {
	v4 := o.hasPublishes()
	n := outboxFixed
	for _, e := range o.Entries {
		n += outboxEntryFixed + len(e.Payload)
		if v4 {
			n += 1 + 8 + len(e.Channel)
		}
	}
	if v4 {
		n += publishMarksFixed
		for _, m := range o.LastPublish {
			n += publishMarkFixed + len(m.Channel)
		}
	}
	return n
}

func appendOutbox(b []byte, o *Outbox) []byte {
	v4 := o.hasPublishes()
	le := binary.LittleEndian
	b = le.AppendUint64(b, o.OutSeq)
	b = le.AppendUint32(b, uint32(len(o.Entries)))
	for _, e := range o.Entries {
		b = le.AppendUint64(b, e.Seq)
		b = le.AppendUint64(b, e.Target)
		if v4 {
			b = append(b, byte(len(e.Channel)))
			b = append(b, e.Channel...)
			b = le.AppendUint64(b, e.Prev)
		}
		b = le.AppendUint32(b, uint32(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	if v4 {
		b = le.AppendUint16(b, uint16(len(o.LastPublish)))
		for _, m := range o.LastPublish {
			b = append(b, byte(len(m.Channel)))
			b = append(b, m.Channel...)
			b = le.AppendUint64(b, m.Seq)
		}
	}
	return b
}

// decodeOutbox reads the outbox section of a version 3 or 4 snapshot from
// the start of b, of which the last reserve bytes belong to what follows
// it (the signature). It returns the bytes consumed. Payloads alias b,
// capacity-capped. The field rules are Validate's, checked after.
func decodeOutbox(b []byte, reserve int, lim Limits, version byte) (*Outbox, int, error) {
	le := binary.LittleEndian
	v4 := version >= VersionPublish
	avail := len(b) - reserve
	if avail < outboxFixed {
		return nil, 0, malformed("truncated in the outbox")
	}
	o := &Outbox{OutSeq: le.Uint64(b)}
	n := le.Uint32(b[8:])
	off := outboxFixed
	if n > lim.MaxOutboxEntries {
		return nil, 0, tooLarge("outbox entries", uint64(n), uint64(lim.MaxOutboxEntries))
	}
	entryFixed, tail := outboxEntryFixed, 0
	if v4 {
		entryFixed, tail = outboxEntryFixedV4, publishMarksFixed
	}
	// Every entry's fixed part (and the mark count after them) must be
	// backed by bytes before the slice for them is allocated.
	if uint64(n)*uint64(entryFixed)+uint64(tail) > uint64(avail-off) {
		return nil, 0, malformed("truncated: %d outbox entries need at least %d bytes", n, uint64(n)*uint64(entryFixed))
	}
	if n > 0 {
		o.Entries = make([]OutboxEntry, n)
	}
	var total uint64
	for i := range o.Entries {
		// The later entries' fixed parts and the mark count, which every
		// variable part must leave room for (counted up front).
		later := (len(o.Entries)-1-i)*entryFixed + tail
		e := OutboxEntry{Seq: le.Uint64(b[off:]), Target: le.Uint64(b[off+8:])}
		off += 16
		if v4 {
			cl := int(b[off])
			off++
			// What is left of this entry after the name: prev, length.
			if cl+8+4+later > avail-off {
				return nil, 0, malformed("truncated in outbox entry %d", i)
			}
			if cl > 0 {
				e.Channel = string(b[off : off+cl])
			}
			off += cl
			e.Prev = le.Uint64(b[off:])
			off += 8
		}
		pl := uint64(le.Uint32(b[off:]))
		off += 4
		if total += pl; total > uint64(lim.MaxOutboxBytes) {
			return nil, 0, tooLarge("outbox bytes", total, uint64(lim.MaxOutboxBytes))
		}
		if pl+uint64(later) > uint64(avail-off) {
			return nil, 0, malformed("truncated in outbox entry %d", i)
		}
		if pl > 0 {
			e.Payload = b[off : off+int(pl) : off+int(pl)]
		}
		off += int(pl)
		o.Entries[i] = e
	}
	if !v4 {
		return o, off, nil
	}
	m := le.Uint16(b[off:])
	off += publishMarksFixed
	if uint32(m) > lim.MaxPublishChannels {
		return nil, 0, tooLarge("publish channels", uint64(m), uint64(lim.MaxPublishChannels))
	}
	if uint64(m)*publishMarkFixed > uint64(avail-off) {
		return nil, 0, malformed("truncated: %d channels' last publishes need at least %d bytes", m, uint64(m)*publishMarkFixed)
	}
	if m > 0 {
		o.LastPublish = make([]PublishMark, m)
	}
	for i := range o.LastPublish {
		cl := int(b[off])
		off++
		if cl+8+(len(o.LastPublish)-1-i)*publishMarkFixed > avail-off {
			return nil, 0, malformed("truncated in the last publish of channel %d", i)
		}
		o.LastPublish[i] = PublishMark{Channel: string(b[off : off+cl]), Seq: le.Uint64(b[off+cl:])}
		off += cl + 8
	}
	// Version 4 exists only to carry publishes: one without any would
	// have been written as version 3.
	if !o.hasPublishes() {
		return nil, 0, malformed("version 4 outbox without publishes")
	}
	return o, off, nil
}
