package channel

import (
	"fmt"
	"maps"
	"time"
)

// State is everything a channel's home holds, for handing the channel to a
// new home when membership changes (Home moved). Handing it over keeps the
// subscriptions, their undelivered queues (each message under the stream and
// seq it was first delivered with, so subscribers' horizons still dedupe it)
// and the publisher dedupe table (so a publisher retrying across the move is
// answered Duplicate, not queued twice).
type State struct {
	Def Definition
	// Epoch counts handoffs; the new home uses Epoch+1 in its StreamID.
	Epoch       uint64
	LastSub     uint64
	Publishers  map[uint64]uint64 // publisher -> last accepted seq
	Subscribers []SubscriberState
	Counters
}

// SubscriberState is one subscription in a State.
type SubscriberState struct {
	Origin     uint64
	ID         uint64
	Entity     [32]byte
	Node       NodeID
	LastStream uint64
	LastSeq    uint64
	Delivered  uint64
	Queue      []QueuedMessage
}

// QueuedMessage is one undelivered message in a SubscriberState.
type QueuedMessage struct {
	Stream, Seq, Prev uint64
	Payload           []byte
}

// Export copies a channel's state out. The caller stops routing to this
// home (Remove) before the new home Imports, so only one of them ever
// answers for the channel.
func (m *Machine) Export(name string) (State, error) {
	cs, err := m.get(name)
	if err != nil {
		return State{}, err
	}
	st := State{Def: cs.def.clone(), Epoch: cs.epoch, LastSub: cs.lastSub, Publishers: maps.Clone(cs.pubs), Counters: cs.ctr}
	for _, o := range sortedKeys(cs.subs) {
		s := cs.subs[o]
		ss := SubscriberState{Origin: o, ID: s.id, Entity: s.entity, Node: s.node, LastStream: s.lastStream, LastSeq: s.lastSeq, Delivered: s.delivered}
		for _, e := range s.queue {
			// Payloads are never written after acceptance, so sharing them
			// is safe.
			ss.Queue = append(ss.Queue, QueuedMessage{Stream: e.stream, Seq: e.seq, Prev: e.prev, Payload: e.payload})
		}
		st.Subscribers = append(st.Subscribers, ss)
	}
	return st, nil
}

// Remove forgets a channel (after Export, or when it is deleted).
func (m *Machine) Remove(name string) error {
	if _, err := m.get(name); err != nil {
		return err
	}
	delete(m.chans, name)
	return nil
}

// Import takes a channel over from its previous home and sends what every
// subscriber has queued. The state comes from another node, so it is
// checked against this machine's bounds and for internal consistency.
func (m *Machine) Import(st State, now time.Time) ([]Deliver, error) {
	if st.Epoch == ^uint64(0) {
		return nil, fmt.Errorf("%w: %q: epoch exhausted", ErrBadState, st.Def.Name)
	}
	cs, err := m.restore(st, st.Epoch+1, 0)
	if err != nil {
		return nil, err
	}
	var out []Deliver
	for _, o := range sortedKeys(cs.subs) {
		out = m.pump(cs, cs.subs[o], now, out)
	}
	return out, nil
}

// Mirror restores a channel exactly as its home has it (same epoch and
// stream, next seq after seq), sending nothing: a replica's copy, which
// then follows the home's inputs. A Machine made with the home's node id
// and incarnation gives the home's stream ids.
func (m *Machine) Mirror(st State, seq uint64) error {
	_, err := m.restore(st, st.Epoch, seq)
	return err
}

// Seq is a channel's last seq on its current stream (with Export, what
// Mirror takes).
func (m *Machine) Seq(name string) (uint64, error) {
	cs, err := m.get(name)
	if err != nil {
		return 0, err
	}
	return cs.seq, nil
}

func (m *Machine) restore(st State, epoch, seq uint64) (*chanState, error) {
	if err := st.Def.Validate(); err != nil {
		return nil, err
	}
	name := st.Def.Name
	if _, ok := m.chans[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrChannelExists, name)
	}
	if len(m.chans) >= m.cfg.MaxChannels {
		return nil, fmt.Errorf("%w: %d channels", ErrLimit, len(m.chans))
	}
	if len(st.Subscribers) > m.cfg.MaxSubscribers || len(st.Publishers) > m.cfg.MaxPublishers {
		return nil, fmt.Errorf("%w: %q: %d subscribers, %d publishers", ErrLimit, name, len(st.Subscribers), len(st.Publishers))
	}
	cs := &chanState{
		def:     st.Def.clone(),
		epoch:   epoch,
		seq:     seq,
		subs:    make(map[uint64]*sub, len(st.Subscribers)),
		pubs:    maps.Clone(st.Publishers),
		ctr:     st.Counters,
		lastSub: st.LastSub,
	}
	if cs.pubs == nil {
		cs.pubs = map[uint64]uint64{}
	}
	cs.stream = StreamID(name, m.self, m.inc, cs.epoch)
	for _, ss := range st.Subscribers {
		if _, dup := cs.subs[ss.Origin]; dup {
			return nil, fmt.Errorf("%w: %q: origin %d twice", ErrBadState, name, ss.Origin)
		}
		if ss.ID == 0 || ss.ID > st.LastSub {
			return nil, fmt.Errorf("%w: %q: subscription id %d (last %d)", ErrBadState, name, ss.ID, st.LastSub)
		}
		if len(ss.Queue) > m.cfg.QueueBound {
			return nil, fmt.Errorf("%w: %q: origin %d has %d queued", ErrLimit, name, ss.Origin, len(ss.Queue))
		}
		s := &sub{origin: ss.Origin, id: ss.ID, entity: ss.Entity, node: ss.Node, lastStream: ss.LastStream, lastSeq: ss.LastSeq, delivered: ss.Delivered}
		for i, q := range ss.Queue {
			if len(q.Payload) > m.cfg.MaxPayload || q.Prev >= q.Seq || (q.Stream == cs.stream && q.Seq > seq) {
				return nil, fmt.Errorf("%w: %q: origin %d entry %d", ErrBadState, name, ss.Origin, i)
			}
			if i > 0 {
				// Within a stream the queue is a prev-linked chain; the
				// window relies on it to keep order.
				p := ss.Queue[i-1]
				if q.Stream == p.Stream && q.Prev != p.Seq {
					return nil, fmt.Errorf("%w: %q: origin %d entry %d breaks its chain", ErrBadState, name, ss.Origin, i)
				}
			}
			s.queue = append(s.queue, &entry{stream: q.Stream, seq: q.Seq, prev: q.Prev, payload: q.Payload})
		}
		cs.subs[ss.Origin] = s
	}
	m.chans[name] = cs
	return cs, nil
}
