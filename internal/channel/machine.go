package channel

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Config bounds a Machine. Zero fields take the defaults in DefaultConfig.
type Config struct {
	// QueueBound is the most undelivered messages one subscriber may have
	// queued; a publish that would exceed it for any subscriber is refused
	// whole with ErrChannelFull.
	QueueBound int
	// Window is the most deliveries in flight (sent, not acked) per
	// subscriber.
	Window int
	// MaxPayload bounds one published payload in bytes.
	MaxPayload int
	// MaxChannels, MaxSubscribers (per channel) and MaxPublishers (per
	// channel's dedupe table) bound memory; past them inputs get ErrLimit
	// rather than evicting state that exactly-once depends on.
	MaxChannels    int
	MaxSubscribers int
	MaxPublishers  int
	// AckTimeout is how long a delivery may stay unacknowledged before Tick
	// sends it again (the Deliver or its ack was lost).
	AckTimeout time.Duration
	// RetryBase and RetryMax shape the doubling backoff after DeliveryFailed.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// DefaultConfig returns the bounds a node uses unless configured otherwise.
func DefaultConfig() Config {
	return Config{
		QueueBound:     1024,
		Window:         32,
		MaxPayload:     1 << 20,
		MaxChannels:    1 << 16,
		MaxSubscribers: 4096,
		MaxPublishers:  1 << 16,
		AckTimeout:     5 * time.Second,
		RetryBase:      100 * time.Millisecond,
		RetryMax:       10 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&c.QueueBound, d.QueueBound)
	pick(&c.Window, d.Window)
	pick(&c.MaxPayload, d.MaxPayload)
	pick(&c.MaxChannels, d.MaxChannels)
	pick(&c.MaxSubscribers, d.MaxSubscribers)
	pick(&c.MaxPublishers, d.MaxPublishers)
	pickD(&c.AckTimeout, d.AckTimeout)
	pickD(&c.RetryBase, d.RetryBase)
	pickD(&c.RetryMax, d.RetryMax)
	if c.RetryMax < c.RetryBase {
		c.RetryMax = c.RetryBase
	}
	return c
}

// Deliver is an output: send Payload to the daemon with origin To, hosted
// (as far as the home knows) on Node. The receiving side accepts it iff
// Prev <= horizon[Stream] < Seq, then sets horizon[Stream] = Seq and acks
// (Stream, Seq); Seq <= horizon is a duplicate, acked again and dropped;
// Prev > horizon is a gap (an earlier delivery is still coming) and is
// refused without an ack. See README.md.
type Deliver struct {
	Channel string
	To      uint64
	Node    NodeID
	Stream  uint64
	Seq     uint64
	// Prev is the Seq of the delivery before this one to the same
	// subscriber on the same stream, 0 for its first.
	Prev uint64
	// Sub is the subscription this delivery belongs to, as Subscribe
	// returned it. The subscriber's node drops deliveries of any other
	// subscription (one it has since dropped), so a late packet from before
	// an unsubscribe can never land after newer messages.
	Sub     uint64
	Payload []byte
}

// Ack names one delivery in acknowledgements and failure reports: the
// (Stream, Seq) of a Deliver to Origin under subscription Sub.
type Ack struct {
	Origin uint64
	Sub    uint64
	Stream uint64
	Seq    uint64
}

// AckOf is the Ack for a delivery.
func AckOf(d Deliver) Ack { return Ack{Origin: d.To, Sub: d.Sub, Stream: d.Stream, Seq: d.Seq} }

// Subscription asks to subscribe the daemon with origin Origin.
type Subscription struct {
	Origin uint64
	// Entity is the daemon's entity id, the subject a token must name.
	Entity [32]byte
	// Node hosts the daemon now; a hint for where to send deliveries.
	Node  NodeID
	Token []byte
}

// Publication is one message offered to a channel.
type Publication struct {
	// Publisher names the sender's sequence: a daemon's origin or an
	// outside client's id. Seq must grow per publisher; Prev is the Seq of
	// that publisher's previous message to this channel (0 for its first).
	Publisher uint64
	Seq       uint64
	Prev      uint64
	// Subject is whom Token was issued to (entity id or client key).
	Subject [32]byte
	Token   []byte
	Payload []byte
}

// Outcome of an accepted publish request.
type Outcome uint8

// Outcomes.
const (
	// Accepted: queued for every subscriber under a new channel seq.
	Accepted Outcome = iota + 1
	// Duplicate: the publisher's seq was already accepted; nothing queued,
	// the caller treats it as success.
	Duplicate
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// PublishResult answers a publish.
type PublishResult struct {
	Outcome Outcome
	// Seq is the channel seq given to the message (0 for a Duplicate).
	Seq uint64
}

// Machine holds every channel homed on one node incarnation.
type Machine struct {
	self  NodeID
	inc   uint64
	cfg   Config
	auth  Authorizer
	chans map[string]*chanState
}

type chanState struct {
	def    Definition
	epoch  uint64
	stream uint64
	seq    uint64
	subs   map[uint64]*sub
	pubs   map[uint64]uint64
	ctr    Counters
	// lastSub numbers subscriptions; it travels with a handoff so ids stay
	// unique per channel.
	lastSub uint64
}

type sub struct {
	origin uint64
	entity [32]byte
	node   NodeID
	queue  []*entry
	// lastStream/lastSeq name the latest entry queued, the Prev of the next
	// one on the same stream.
	lastStream uint64
	lastSeq    uint64
	id         uint64
	delivered  uint64
}

type entry struct {
	stream, seq, prev uint64
	payload           []byte
	sent              bool
	// due: for a sent entry, when to give up waiting for its ack; for an
	// unsent one, the earliest time it may be (re)sent.
	due      time.Time
	attempts int
}

// New returns a machine for the node self in its incarnation inc. auth may
// be nil if no channel will be restricted (restricted inputs are then
// refused).
func New(self NodeID, inc uint64, cfg Config, auth Authorizer) *Machine {
	return &Machine{self: self, inc: inc, cfg: cfg.withDefaults(), auth: auth, chans: map[string]*chanState{}}
}

// Create defines a channel. Re-creating it identically is a no-op, so a
// caller may retry; a different definition is ErrChannelExists.
func (m *Machine) Create(def Definition) error {
	if err := def.Validate(); err != nil {
		return err
	}
	if cs, ok := m.chans[def.Name]; ok {
		if cs.def.Equal(def) {
			return nil
		}
		return fmt.Errorf("%w: %q", ErrChannelExists, def.Name)
	}
	if len(m.chans) >= m.cfg.MaxChannels {
		return fmt.Errorf("%w: %d channels", ErrLimit, len(m.chans))
	}
	m.chans[def.Name] = &chanState{
		def:    def.clone(),
		stream: StreamID(def.Name, m.self, m.inc, 0),
		subs:   map[uint64]*sub{},
		pubs:   map[uint64]uint64{},
	}
	return nil
}

func (m *Machine) get(name string) (*chanState, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	cs, ok := m.chans[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrChannelNotFound, name)
	}
	return cs, nil
}

func (m *Machine) allow(cs *chanState, subject [32]byte, scope Scope, token []byte, now time.Time) error {
	if !cs.def.Restricted {
		return nil
	}
	if m.auth == nil {
		return fmt.Errorf("%w: %s on restricted %q: no authorizer", ErrNotPermitted, scope, cs.def.Name)
	}
	if err := m.auth.Allow(cs.def.clone(), subject, scope, token, now); err != nil {
		return fmt.Errorf("%w: %s on %q: %w", ErrNotPermitted, scope, cs.def.Name, err)
	}
	return nil
}

// Subscribe adds a subscriber, which receives every message accepted from
// now on, and returns the subscription's id (the ledger records it, and the
// subscriber's node accepts only deliveries carrying it). Subscribing an
// origin that is already subscribed (the migration target replaying its
// ledger) keeps its id and queue and acts as Move; the entity must match.
func (m *Machine) Subscribe(name string, s Subscription, now time.Time) (uint64, []Deliver, error) {
	cs, err := m.get(name)
	if err != nil {
		return 0, nil, err
	}
	if err := m.allow(cs, s.Entity, ScopeSubscribe, s.Token, now); err != nil {
		return 0, nil, err
	}
	if old, ok := cs.subs[s.Origin]; ok {
		if old.entity != s.Entity {
			return 0, nil, fmt.Errorf("%w: origin %d of %q is subscribed by another entity", ErrNotPermitted, s.Origin, name)
		}
		return old.id, m.move(cs, old, s.Node, now), nil
	}
	if len(cs.subs) >= m.cfg.MaxSubscribers {
		return 0, nil, fmt.Errorf("%w: %d subscribers on %q", ErrLimit, len(cs.subs), name)
	}
	cs.lastSub++
	cs.subs[s.Origin] = &sub{origin: s.Origin, entity: s.Entity, node: s.Node, id: cs.lastSub}
	return cs.lastSub, nil, nil
}

// Unsubscribe removes a subscriber and drops what it had queued. A non-zero
// from that is not the subscriber's current node is a stale request (the
// migration source tearing down after the target already moved the
// subscription) and is ignored.
func (m *Machine) Unsubscribe(name string, origin uint64, from NodeID) error {
	cs, err := m.get(name)
	if err != nil {
		return err
	}
	s, ok := cs.subs[origin]
	if !ok {
		return fmt.Errorf("%w: origin %d on %q", ErrNotSubscribed, origin, name)
	}
	if !from.IsZero() && from != s.node {
		return nil
	}
	delete(cs.subs, origin)
	return nil
}

// Move records that a subscriber now lives on node. Whatever was in flight
// to the old node is sent again to the new one at once: it may have been
// lost with the old host, and the subscriber's horizon, which travelled in
// its snapshot, drops any copy it already had.
func (m *Machine) Move(name string, origin uint64, node NodeID, now time.Time) ([]Deliver, error) {
	cs, err := m.get(name)
	if err != nil {
		return nil, err
	}
	s, ok := cs.subs[origin]
	if !ok {
		return nil, fmt.Errorf("%w: origin %d on %q", ErrNotSubscribed, origin, name)
	}
	return m.move(cs, s, node, now), nil
}

func (m *Machine) move(cs *chanState, s *sub, node NodeID, now time.Time) []Deliver {
	if node == s.node {
		return nil
	}
	s.node = node
	for _, e := range s.queue {
		e.sent, e.due, e.attempts = false, time.Time{}, 0
	}
	return m.pump(cs, s, now, nil)
}

// Publish offers a message. It is queued for every subscriber under the next
// channel seq, or refused whole: ErrChannelFull when any subscriber's queue
// is at its bound (nothing is queued anywhere, nothing recorded, so the
// caller retries the same Seq later or gives up with a clear error), or a
// permission, ordering or size error.
func (m *Machine) Publish(name string, p Publication, now time.Time) (PublishResult, []Deliver, error) {
	cs, err := m.get(name)
	if err != nil {
		return PublishResult{}, nil, err
	}
	if err := m.allow(cs, p.Subject, ScopePublish, p.Token, now); err != nil {
		return PublishResult{}, nil, err
	}
	if len(p.Payload) > m.cfg.MaxPayload {
		return PublishResult{}, nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(p.Payload), m.cfg.MaxPayload)
	}
	last, known := cs.pubs[p.Publisher]
	if known && p.Seq <= last {
		cs.ctr.Duplicates++
		return PublishResult{Outcome: Duplicate}, nil, nil
	}
	if known && p.Prev != last {
		return PublishResult{}, nil, fmt.Errorf("%w: publisher %d seq %d prev %d, last accepted %d", ErrOutOfOrder, p.Publisher, p.Seq, p.Prev, last)
	}
	if !known && len(cs.pubs) >= m.cfg.MaxPublishers {
		return PublishResult{}, nil, fmt.Errorf("%w: %d publishers on %q", ErrLimit, len(cs.pubs), name)
	}
	origins := sortedKeys(cs.subs)
	for _, o := range origins {
		if s := cs.subs[o]; len(s.queue) >= m.cfg.QueueBound {
			cs.ctr.Full++
			return PublishResult{}, nil, fmt.Errorf("%w: %q: subscriber %d has %d queued", ErrChannelFull, name, o, len(s.queue))
		}
	}
	cs.pubs[p.Publisher] = p.Seq
	cs.seq++
	cs.ctr.Published++
	payload := append([]byte(nil), p.Payload...)
	var out []Deliver
	for _, o := range origins {
		s := cs.subs[o]
		prev := uint64(0)
		if s.lastStream == cs.stream {
			prev = s.lastSeq
		}
		s.queue = append(s.queue, &entry{stream: cs.stream, seq: cs.seq, prev: prev, payload: payload})
		s.lastStream, s.lastSeq = cs.stream, cs.seq
		out = m.pump(cs, s, now, out)
	}
	return PublishResult{Outcome: Accepted, Seq: cs.seq}, out, nil
}

// Delivered takes a subscriber's ack. Acks are cumulative: the subscriber
// accepts in order, so having Seq means having every earlier entry of that
// stream. An ack for another subscription of the same origin is stale and
// ignored.
func (m *Machine) Delivered(name string, a Ack, now time.Time) ([]Deliver, error) {
	cs, s, err := m.subOf(name, a)
	if err != nil || s == nil {
		return nil, err
	}
	stream, seq := a.Stream, a.Seq
	kept := s.queue[:0]
	for _, e := range s.queue {
		if e.stream == stream && e.seq <= seq {
			s.delivered++
			cs.ctr.Delivered++
			continue
		}
		kept = append(kept, e)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	return m.pump(cs, s, now, nil), nil
}

// DeliveryFailed reports that (stream, seq) did not reach the subscriber
// (transport error, or refused as a gap). It stays queued and Tick sends it
// again after a doubling backoff.
func (m *Machine) DeliveryFailed(name string, a Ack, now time.Time) error {
	_, s, err := m.subOf(name, a)
	if err != nil || s == nil {
		return err
	}
	stream, seq := a.Stream, a.Seq
	for _, e := range s.queue {
		if e.stream == stream && e.seq == seq && e.sent {
			e.sent = false
			e.attempts++
			e.due = now.Add(m.backoff(e.attempts))
		}
	}
	return nil
}

// subOf finds the subscription an ack names; a nil sub with a nil error is
// a stale ack for an earlier subscription of the origin.
func (m *Machine) subOf(name string, a Ack) (*chanState, *sub, error) {
	cs, err := m.get(name)
	if err != nil {
		return nil, nil, err
	}
	s, ok := cs.subs[a.Origin]
	if !ok {
		return nil, nil, fmt.Errorf("%w: origin %d on %q", ErrNotSubscribed, a.Origin, name)
	}
	if s.id != a.Sub {
		return cs, nil, nil
	}
	return cs, s, nil
}

func (m *Machine) backoff(attempts int) time.Duration {
	d := m.cfg.RetryBase
	for i := 1; i < attempts && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.RetryMax)
}

// Tick advances time: deliveries whose ack is overdue and failed ones whose
// backoff has passed are sent again. Outputs come in channel-name, then
// origin, then queue order so a run is reproducible.
func (m *Machine) Tick(now time.Time) []Deliver {
	var out []Deliver
	for _, name := range sortedKeys(m.chans) {
		cs := m.chans[name]
		for _, o := range sortedKeys(cs.subs) {
			s := cs.subs[o]
			for _, e := range s.queue {
				if e.sent && !now.Before(e.due) {
					e.sent = false
					e.attempts++
					e.due = time.Time{}
				}
			}
			out = m.pump(cs, s, now, out)
		}
	}
	return out
}

// pump sends what the window allows: among the first Window entries, those
// not in flight and past their backoff. Entries of a newer stream wait until
// every entry of an older one is acked, since the subscriber can only order
// deliveries within a stream.
func (m *Machine) pump(cs *chanState, s *sub, now time.Time, out []Deliver) []Deliver {
	if len(s.queue) == 0 {
		return out
	}
	head := s.queue[0].stream
	for i, e := range s.queue {
		if i >= m.cfg.Window || e.stream != head {
			break
		}
		if e.sent || now.Before(e.due) {
			continue
		}
		e.sent = true
		e.due = now.Add(m.cfg.AckTimeout)
		out = append(out, Deliver{
			Channel: cs.def.Name, To: s.origin, Node: s.node,
			Stream: e.stream, Seq: e.seq, Prev: e.prev, Sub: s.id, Payload: e.payload,
		})
	}
	return out
}

// Counters are a channel's totals since it was created (or imported).
type Counters struct {
	Published  uint64
	Delivered  uint64 // acked deliveries, summed over subscribers
	Duplicates uint64 // publishes answered Duplicate
	Full       uint64 // publishes refused with ErrChannelFull
}

// SubscriberStats describes one subscriber for `channel ls`.
type SubscriberStats struct {
	Origin    uint64
	ID        uint64
	Node      NodeID
	Queued    int // undelivered, including in flight
	InFlight  int
	Delivered uint64
}

// Stats describes one channel for `channel ls`.
type Stats struct {
	Definition  Definition
	Home        NodeID
	Stream      uint64
	Seq         uint64
	Subscribers []SubscriberStats // by origin
	Counters
}

// Stats reports one channel.
func (m *Machine) Stats(name string) (Stats, error) {
	cs, err := m.get(name)
	if err != nil {
		return Stats{}, err
	}
	return m.stats(cs), nil
}

// List reports every channel homed here, by name.
func (m *Machine) List() []Stats {
	out := make([]Stats, 0, len(m.chans))
	for _, name := range sortedKeys(m.chans) {
		out = append(out, m.stats(m.chans[name]))
	}
	return out
}

func (m *Machine) stats(cs *chanState) Stats {
	st := Stats{Definition: cs.def.clone(), Home: m.self, Stream: cs.stream, Seq: cs.seq, Counters: cs.ctr}
	for _, o := range sortedKeys(cs.subs) {
		s := cs.subs[o]
		ss := SubscriberStats{Origin: o, ID: s.id, Node: s.node, Queued: len(s.queue), Delivered: s.delivered}
		for _, e := range s.queue {
			if e.sent {
				ss.InFlight++
			}
		}
		st.Subscribers = append(st.Subscribers, ss)
	}
	return st
}

func sortedKeys[K interface{ ~string | ~uint64 }, V any](mp map[K]V) []K {
	return slices.Sorted(maps.Keys(mp))
}
