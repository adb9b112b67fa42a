package snapshot

import (
	"encoding/binary"
	"math"
)

// Outbox is a daemon's undelivered daemon-to-daemon messages (the send
// import) and its outbound sequence. It travels in the snapshot so that a
// message committed before a checkpoint or a migration is still delivered
// after it (FORMAT.md, "Outbox").
type Outbox struct {
	// OutSeq is the last sequence number the daemon gave a message; the
	// next one gets OutSeq+1.
	OutSeq uint64
	// Entries are the messages not yet acknowledged, seq strictly
	// increasing, each in 1..OutSeq.
	Entries []OutboxEntry
}

// OutboxEntry is one undelivered message.
type OutboxEntry struct {
	Seq     uint64 // the sender's outbound sequence number
	Target  uint64 // the target daemon's origin
	Payload []byte
}

const (
	// outboxFixed: out_seq u64, count u32.
	outboxFixed = 8 + 4
	// outboxEntryFixed: seq u64, target u64, payload length u32.
	outboxEntryFixed = 8 + 8 + 4
)

// Clone returns a deep copy.
func (o *Outbox) Clone() *Outbox {
	if o == nil {
		return nil
	}
	c := &Outbox{OutSeq: o.OutSeq}
	if o.Entries != nil {
		c.Entries = make([]OutboxEntry, len(o.Entries))
		for i, e := range o.Entries {
			e.Payload = cloneBytes(e.Payload)
			c.Entries[i] = e
		}
	}
	return c
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
	}
	return nil
}

func (o *Outbox) encodedSize() int {
	n := outboxFixed
	for _, e := range o.Entries {
		n += outboxEntryFixed + len(e.Payload)
	}
	return n
}

func appendOutbox(b []byte, o *Outbox) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, o.OutSeq)
	b = le.AppendUint32(b, uint32(len(o.Entries)))
	for _, e := range o.Entries {
		b = le.AppendUint64(b, e.Seq)
		b = le.AppendUint64(b, e.Target)
		b = le.AppendUint32(b, uint32(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	return b
}

// decodeOutbox reads the outbox section from the start of b, of which the
// last reserve bytes belong to what follows it (the signature). It returns
// the bytes consumed. Payloads alias b, capacity-capped.
func decodeOutbox(b []byte, reserve int, lim Limits) (*Outbox, int, error) {
	le := binary.LittleEndian
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
	// Every entry's fixed part must be backed by bytes before the slice
	// for them is allocated.
	if uint64(n)*outboxEntryFixed > uint64(avail-off) {
		return nil, 0, malformed("truncated: %d outbox entries need at least %d bytes", n, uint64(n)*outboxEntryFixed)
	}
	if n > 0 {
		o.Entries = make([]OutboxEntry, n)
	}
	var total uint64
	for i := range o.Entries {
		if avail-off < outboxEntryFixed {
			return nil, 0, malformed("truncated in outbox entry %d", i)
		}
		e := OutboxEntry{Seq: le.Uint64(b[off:]), Target: le.Uint64(b[off+8:])}
		pl := uint64(le.Uint32(b[off+16:]))
		off += outboxEntryFixed
		if total += pl; total > uint64(lim.MaxOutboxBytes) {
			return nil, 0, tooLarge("outbox bytes", total, uint64(lim.MaxOutboxBytes))
		}
		if pl > uint64(avail-off) {
			return nil, 0, malformed("truncated in outbox entry %d", i)
		}
		if pl > 0 {
			e.Payload = b[off : off+int(pl) : off+int(pl)]
		}
		off += int(pl)
		o.Entries[i] = e
	}
	return o, off, nil
}
