package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	// ErrInvalidConfig is wrapped by Join when the Config is unusable.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrJoin is wrapped by Join when no seed could be contacted (unreachable,
	// wrong cluster secret, wrong label) or ctx ended first.
	ErrJoin = errors.New("cluster: join failed")
	// ErrClosed is returned by calls made after Shutdown.
	ErrClosed = errors.New("cluster: membership shut down")
	// ErrNodeIDChanged is returned by UpdateMeta when the new metadata
	// carries a different node id: identity is fixed for a membership's life.
	ErrNodeIDChanged = errors.New("cluster: node id cannot change")
	// ErrAnnounceUnconfirmed is wrapped when the local metadata or leave
	// notice was recorded but no peer confirmed receipt in time. Gossip will
	// still spread it; the error only says it was not confirmed.
	ErrAnnounceUnconfirmed = errors.New("cluster: announcement not confirmed by any peer")
)

// DefaultLabel namespaces wasmesh gossip. memberlist authenticates the label
// with the cluster secret, so packets from another memberlist-based system on
// the same port are dropped instead of merged.
const DefaultLabel = "wasmesh/1"

// defaultAnnounceTimeout bounds Leave and UpdateMeta when neither the caller's
// context nor its timeout does: memberlist would otherwise wait forever for a
// peer that never answers.
const defaultAnnounceTimeout = 5 * time.Second

// Timing overrides memberlist's failure-detection and gossip periods. Zero
// fields keep memberlist's LAN defaults (probe every 1 s, dead after several
// seconds, push/pull every 30 s).
type Timing struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	GossipInterval          time.Duration
	PushPullInterval        time.Duration
	TCPTimeout              time.Duration
	GossipToTheDeadTime     time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	AwarenessMaxMultiplier  int
}

// FastTiming suits loopback and tests: a silent node is declared dead in
// roughly 1-2 s. It is too eager for real networks, where a GC pause or a
// lost packet would cause false suspicions.
func FastTiming() Timing {
	return Timing{
		ProbeInterval:           200 * time.Millisecond,
		ProbeTimeout:            100 * time.Millisecond,
		GossipInterval:          50 * time.Millisecond,
		PushPullInterval:        2 * time.Second,
		TCPTimeout:              time.Second,
		GossipToTheDeadTime:     2 * time.Second,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 2,
		AwarenessMaxMultiplier:  2,
	}
}

func (t Timing) apply(c *memberlist.Config) {
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&c.ProbeInterval, t.ProbeInterval)
	setDur(&c.ProbeTimeout, t.ProbeTimeout)
	setDur(&c.GossipInterval, t.GossipInterval)
	setDur(&c.PushPullInterval, t.PushPullInterval)
	setDur(&c.TCPTimeout, t.TCPTimeout)
	setDur(&c.GossipToTheDeadTime, t.GossipToTheDeadTime)
	setInt(&c.SuspicionMult, t.SuspicionMult)
	setInt(&c.SuspicionMaxTimeoutMult, t.SuspicionMaxTimeoutMult)
	setInt(&c.AwarenessMaxMultiplier, t.AwarenessMaxMultiplier)
}

// Config configures Join.
type Config struct {
	// Name is the gossip-level member name; it defaults to Meta.NodeID and
	// must be unique in the cluster.
	Name string
	// BindAddr and BindPort are where gossip (UDP and TCP, same port)
	// listens. BindAddr defaults to 0.0.0.0; BindPort 0 picks a free port.
	BindAddr string
	BindPort int
	// AdvertiseAddr/AdvertisePort are what peers are told to contact, for
	// NAT or multi-homed hosts. Defaults: derived from the bind address, and
	// the bound port.
	AdvertiseAddr string
	AdvertisePort int
	// SecretKey is the cluster secret (16, 24 or 32 bytes, AES-GCM). It is
	// required: unencrypted gossip would let anyone on the network join and
	// announce a QUIC address.
	SecretKey []byte
	// Label defaults to DefaultLabel; nodes with different labels ignore
	// each other.
	Label string
	Meta  NodeMeta
	// Logger receives memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Verify, if set, must prove that a remote member holds a certificate
	// of the cluster CA for the node id and QUIC address it announces (the
	// node runs a TLS handshake). Until it succeeded the member is not
	// Verified and never a candidate. Nil trusts every member (tests).
	Verify func(ctx context.Context, m Member) error
	// Rejected, if set, is called once per gossip packet or stream from
	// outside that memberlist refused (see the Reject* reasons); the log
	// only gets a rate-limited line about them.
	Rejected func(reason string)
	// Seeds are host:port gossip addresses of existing members. Empty starts
	// a new cluster.
	Seeds  []string
	Timing Timing
	// ForgetAfter is how long dead and left members stay in Members (for
	// operators and for re-placement logic). Default one hour.
	ForgetAfter time.Duration
}

// State is a member's liveness as seen by the local node.
type State int

const (
	StateAlive State = iota + 1
	// StateSuspect is part of SWIM, but memberlist v0.7.0 neither raises an
	// event on suspicion nor fills in Node.State for its delegates, so this
	// package currently reports a suspect node as alive until it is declared
	// dead. The value is reserved so callers can switch on it already.
	StateSuspect
	StateDead // failed, or vanished without a leave notice
	// StateLeft: left gracefully. memberlist does not tell its delegates
	// dead from left either; Leave first announces a "leaving" flag in the
	// metadata, and a departure after that flag is recorded as left. A peer
	// that receives the departure before the flag records it as dead.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Member is one node as seen by the local node.
type Member struct {
	Name   string
	NodeID string // Meta.NodeID; "" when MetaErr != nil
	Addr   netip.AddrPort
	State  State
	Meta   NodeMeta
	// MetaErr is set when the member's announced metadata failed to decode
	// or validate. Such a member stays visible (so operators can see it) but
	// is never a scheduling candidate.
	MetaErr error
	Local   bool
	// Leaving is set once the member has announced a graceful Leave; it is
	// no longer a scheduling candidate even while still alive.
	Leaving bool
	// Verified is set once Config.Verify proved the member's certificate
	// (always for the local member, or without Config.Verify). An
	// unverified member is listed but never scheduled.
	Verified bool
	// Since is when the local node last saw this member's state or metadata
	// change.
	Since time.Time
}

// EventType says what happened to a member.
type EventType int

const (
	EventJoin   EventType = iota + 1
	EventLeave            // Member.State tells dead from left
	EventUpdate           // metadata changed
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	default:
		return fmt.Sprintf("EventType(%d)", int(t))
	}
}

// Event is a membership change, carrying the member's full new state so a
// consumer never has to look it up again.
type Event struct {
	Type   EventType
	Member Member
}

// Membership is the local node's view of the cluster.
type Membership struct {
	ml          *memberlist.Memberlist
	log         *slog.Logger
	name        string
	nodeID      string
	forgetAfter time.Duration

	// lifeMu is held shared by calls into memberlist that must not overlap
	// Shutdown (memberlist panics on Leave after Shutdown) and exclusively by
	// Shutdown.
	lifeMu   sync.RWMutex
	updateMu sync.Mutex // serialises UpdateMeta so announcements keep their order

	// mu guards the fields below. Lock order: memberlist's internal node lock
	// (held while it calls our delegates), then mu, then a subscriber's mu.
	// Nothing here calls into memberlist while holding mu.
	mu        sync.Mutex
	meta      NodeMeta
	leaving   bool
	metaBytes []byte
	members   map[string]*Member
	subs      map[*subscriber]struct{}
	closed    bool
	closedCh  chan struct{}
	wg        sync.WaitGroup
	verifyFn  func(ctx context.Context, m Member) error
	verifying map[string]string // member name → verifyKey being proved
}

// Join starts gossip on the configured address and, if seeds are given,
// joins the existing cluster through them. It returns once at least one seed
// accepted the state exchange, or with ErrJoin. On error nothing is left
// running.
func Join(ctx context.Context, cfg Config) (*Membership, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJoin, err)
	}
	metaBytes, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch len(cfg.SecretKey) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: secret key is %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(cfg.SecretKey))
	}
	if cfg.BindPort < 0 || cfg.BindPort > 65535 || cfg.AdvertisePort < 0 || cfg.AdvertisePort > 65535 {
		return nil, fmt.Errorf("%w: port out of range", ErrInvalidConfig)
	}
	name := cfg.Name
	if name == "" {
		name = cfg.Meta.NodeID
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("member", name))
	forget := cfg.ForgetAfter
	if forget <= 0 {
		forget = time.Hour
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr = cmpOr(cfg.BindAddr, "0.0.0.0")
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	// DefaultLANConfig advertises 7946 whatever the bind port; a node bound
	// elsewhere would tell peers the wrong port.
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	// Copies: memberlist and this type keep them, and the caller may reuse
	// its slices.
	mc.SecretKey = slices.Clone(cfg.SecretKey)
	mc.Label = cmpOr(cfg.Label, DefaultLabel)
	mc.Logger = newMemberlistLogger(logger, cfg.Rejected)
	cfg.Timing.apply(mc)

	m := &Membership{
		log:         logger,
		name:        name,
		nodeID:      cfg.Meta.NodeID,
		forgetAfter: forget,
		meta:        cloneMeta(cfg.Meta),
		metaBytes:   metaBytes,
		members:     make(map[string]*Member),
		subs:        make(map[*subscriber]struct{}),
		closedCh:    make(chan struct{}),
		verifyFn:    cfg.Verify,
		verifying:   make(map[string]string),
	}
	// Delegates must be ready before Create: memberlist announces the local
	// node (calling NodeMeta and NotifyJoin) inside it.
	mc.Delegate = (*metaDelegate)(m)
	mc.Events = (*eventDelegate)(m)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s:%d: %w", mc.BindAddr, cfg.BindPort, err)
	}
	m.ml = ml

	if len(cfg.Seeds) == 0 {
		return m, nil
	}
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		// memberlist.Join has no context; it is bounded by TCPTimeout per
		// seed address, so an abandoned call still ends on its own.
		n, err := ml.Join(cfg.Seeds)
		res <- result{n, err}
	}()
	select {
	case r := <-res:
		if r.n == 0 {
			_ = m.Shutdown()
			if r.err == nil {
				r.err = errors.New("no seed reachable")
			}
			return nil, fmt.Errorf("%w: via %s: %w", ErrJoin, strings.Join(cfg.Seeds, ","), r.err)
		}
		logger.Debug("joined cluster", slog.Int("seeds_contacted", r.n))
		return m, nil
	case <-ctx.Done():
		_ = m.Shutdown()
		return nil, fmt.Errorf("%w: %w", ErrJoin, ctx.Err())
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Name is the local gossip member name.
func (m *Membership) Name() string { return m.name }

// NodeID is the local node id.
func (m *Membership) NodeID() string { return m.nodeID }

// LocalMember returns the local node's own entry.
func (m *Membership) LocalMember() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.members[m.name]; ok {
		return cloneMember(*e)
	}
	return Member{Name: m.name, NodeID: m.nodeID, Local: true}
}

// LocalAddr is the gossip address peers use for this node; give it to other
// nodes as a seed.
func (m *Membership) LocalAddr() netip.AddrPort { return m.LocalMember().Addr }

// UpdateMeta re-announces the local metadata (load or capabilities changed).
// It validates and records meta first, then waits until a peer has received
// the announcement or ctx ends. An error wrapping ErrAnnounceUnconfirmed or
// a context error still leaves the new metadata in force: gossip and
// push/pull carry it on.
func (m *Membership) UpdateMeta(ctx context.Context, meta NodeMeta) error {
	if meta.NodeID != m.nodeID {
		return fmt.Errorf("%w: %q -> %q", ErrNodeIDChanged, m.nodeID, meta.NodeID)
	}
	if _, err := EncodeMeta(meta); err != nil {
		return err
	}
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	return m.announce(ctx, 0, func() error {
		b, err := encodeMeta(meta, m.leaving)
		if err != nil {
			return err
		}
		m.meta, m.metaBytes = cloneMeta(meta), b
		return nil
	}, nil)
}

// announce applies set (under mu) and then broadcasts the local node's
// metadata, followed by then (if not nil), both in one background call that
// holds lifeMu shared so Shutdown cannot interleave. It returns when the
// broadcast is confirmed, fails, or ctx ends.
func (m *Membership) announce(ctx context.Context, timeout time.Duration, set func() error, then func(time.Duration) error) error {
	m.lifeMu.RLock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.lifeMu.RUnlock()
		return ErrClosed
	}
	if err := set(); err != nil {
		m.mu.Unlock()
		m.lifeMu.RUnlock()
		return err
	}
	m.mu.Unlock()

	bound := announceTimeout(ctx, timeout)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		defer m.lifeMu.RUnlock()
		if err := m.ml.UpdateNode(bound); err != nil {
			done <- fmt.Errorf("metadata update: %w", err)
			return
		}
		if then != nil {
			// Whatever is left of the bound, but never 0: memberlist
			// reads 0 as "wait forever".
			done <- then(max(bound-time.Since(start), time.Millisecond))
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAnnounceUnconfirmed, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrAnnounceUnconfirmed, ctx.Err())
	}
}

// announceTimeout is the bound handed to memberlist calls that take a plain
// timeout: the earlier of ctx's deadline and timeout, else a default, so the
// background call always ends.
func announceTimeout(ctx context.Context, timeout time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if until := time.Until(dl); timeout <= 0 || until < timeout {
			timeout = until
		}
	}
	if timeout <= 0 {
		// Either no bound at all, or ctx already expired; memberlist treats
		// 0 as "wait forever", so never pass it on.
		if ctx.Err() != nil {
			return time.Millisecond
		}
		return defaultAnnounceTimeout
	}
	return timeout
}

// Members lists every known member, sorted by name: alive ones and those that
// died or left less than ForgetAfter ago. The slice and its contents are
// copies.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]Member, 0, len(m.members))
	for name, e := range m.members {
		if (e.State == StateDead || e.State == StateLeft) && now.Sub(e.Since) > m.forgetAfter {
			delete(m.members, name)
			continue
		}
		out = append(out, cloneMember(*e))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// MemberByNodeID returns the alive member announcing node id id. It is the
// lookup a transport uses to decide whether a peer is a cluster member. If
// two alive members claim the same id, neither is returned: an ambiguous
// identity is refused rather than guessed.
func (m *Membership) MemberByNodeID(id string) (Member, bool) {
	if id == "" {
		return Member{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var found *Member
	for _, e := range m.members {
		if e.State != StateAlive || e.MetaErr != nil || e.NodeID != id {
			continue
		}
		if found != nil {
			return Member{}, false
		}
		found = e
	}
	if found == nil {
		return Member{}, false
	}
	return cloneMember(*found), true
}

// Candidates is CandidatesFrom(m.Members()).
func (m *Membership) Candidates() []Candidate { return CandidatesFrom(m.Members()) }

// Subscribe returns a channel of membership events. It starts with a
// synthetic EventJoin for every member alive at the time of the call (so
// list-then-watch has no gap), then delivers changes in the order memberlist
// reported them. Events are queued per subscriber without bound rather than
// dropped or allowed to stall gossip, so keep reading. The channel is closed
// when ctx ends or the membership shuts down.
func (m *Membership) Subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		close(s.out)
		return s.out
	}
	names := make([]string, 0, len(m.members))
	for name, e := range m.members {
		if e.State == StateAlive {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		s.queue = append(s.queue, Event{Type: EventJoin, Member: cloneMember(*m.members[name])})
	}
	m.subs[s] = struct{}{}
	m.wg.Add(1)
	m.mu.Unlock()
	go m.runSubscriber(ctx, s)
	return s.out
}

func (m *Membership) runSubscriber(ctx context.Context, s *subscriber) {
	defer m.wg.Done()
	defer close(s.out)
	defer func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
	}()
	for {
		ev, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			case <-m.closedCh:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-ctx.Done():
			return
		case <-m.closedCh:
			return
		}
	}
}

type subscriber struct {
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
	out   chan Event
}

func (s *subscriber) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false
	}
	ev := s.queue[0]
	s.queue[0] = Event{}
	s.queue = s.queue[1:]
	return ev, true
}

// Leave tells the cluster this node is going away, so peers mark it left
// rather than waiting to detect it dead. It waits for the notice to reach a
// peer, for at most timeout and no longer than ctx allows. Gossip keeps
// running until Shutdown.
//
// The leave is announced in two steps, because memberlist does not tell its
// delegates whether a node left or died: first the metadata gains a leaving
// flag (peers stop scheduling onto it), then memberlist's own leave notice
// follows and peers record the member as StateLeft.
func (m *Membership) Leave(ctx context.Context, timeout time.Duration) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	return m.announce(ctx, timeout, func() error {
		b, err := encodeMeta(m.meta, true)
		if err != nil {
			return err
		}
		m.leaving, m.metaBytes = true, b
		return nil
	}, func(rest time.Duration) error {
		if err := m.ml.Leave(rest); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		return nil
	})
}

// Shutdown stops gossip without a leave notice (peers will detect the node
// dead), closes every subscription and waits for their goroutines. It is
// safe to call more than once.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closedCh)
	m.mu.Unlock()
	var err error
	if m.ml != nil {
		if e := m.ml.Shutdown(); e != nil {
			err = fmt.Errorf("cluster: shutdown gossip: %w", e)
		}
	}
	m.wg.Wait()
	return err
}

// handle records a memberlist notification and fans it out. memberlist calls
// it with its node lock held, so it must not block or call back into
// memberlist.
func (m *Membership) handle(t EventType, n *memberlist.Node) {
	mem := m.memberFromNode(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if t == EventLeave {
		// The flag may have arrived with this very notice's metadata or
		// with an earlier update.
		if prev, ok := m.members[mem.Name]; ok && prev.Leaving {
			mem.Leaving = true
		}
		mem.State = StateDead
		if mem.Leaving {
			mem.State = StateLeft
		}
	}
	if mem.MetaErr != nil && t != EventLeave {
		m.log.Warn("member announced unusable metadata; it will not be scheduled",
			slog.String("peer", mem.Name), slog.Any("error", mem.MetaErr))
	}
	m.trust(&mem, t)
	stored := mem
	m.members[mem.Name] = &stored
	for s := range m.subs {
		s.push(Event{Type: t, Member: cloneMember(mem)})
	}
}

// memberFromNode copies what we need out of n; n belongs to memberlist and
// is only safe to read during the callback.
func (m *Membership) memberFromNode(n *memberlist.Node) Member {
	// n.State is not used: memberlist keeps the real state in a wrapper
	// its delegates never see. The event type tells alive from gone.
	mem := Member{
		Name:  n.Name,
		State: StateAlive,
		Local: n.Name == m.name,
		Since: time.Now(),
	}
	if ip, ok := netip.AddrFromSlice(n.Addr); ok {
		mem.Addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
	}
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		mem.MetaErr = fmt.Errorf("member %q: %w", n.Name, err)
	} else {
		mem.Meta = meta
		mem.NodeID = meta.NodeID
		mem.Leaving = leaving
	}
	return mem
}

func cloneMember(m Member) Member {
	m.Meta = cloneMeta(m.Meta)
	return m
}

func cloneMeta(m NodeMeta) NodeMeta {
	m.X25519Public = slices.Clone(m.X25519Public)
	m.X25519Signature = slices.Clone(m.X25519Signature)
	m.Capabilities = m.Capabilities.Normalize()
	return m
}

// metaDelegate feeds memberlist our encoded metadata. The user-message and
// state-exchange hooks are unused: wasmesh sends its own traffic over QUIC.
type metaDelegate Membership

func (d *metaDelegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.metaBytes) > limit {
		// EncodeMeta already enforces MetaMaxSize; this guards a smaller
		// limit so memberlist never panics on our metadata.
		return nil
	}
	return m.metaBytes
}

func (*metaDelegate) NotifyMsg([]byte)                           {}
func (*metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (*metaDelegate) LocalState(join bool) []byte                { return nil }
func (*metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

type eventDelegate Membership

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) { (*Membership)(d).handle(EventJoin, n) }
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	(*Membership)(d).handle(EventLeave, n)
}
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	(*Membership)(d).handle(EventUpdate, n)
}
