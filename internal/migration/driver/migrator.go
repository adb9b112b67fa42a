// Package driver runs live migrations: it drives the sans-I/O state
// machines of package migration with a node's wasm runtime (host) and its
// mesh (a Mesh, normally the QUIC transport). It is the I/O layer the
// migration README describes: it sends their messages, performs their
// effects and feeds the results back.
package driver

import (
	"cmp"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// NodeID names a node (the transport's node id as text).
type NodeID = protocol.NodeID

// Mesh is what the migrator needs from the network and the node's routing.
type Mesh interface {
	// Self is this node's id.
	Self() NodeID
	// Send delivers one frame to a peer; the frames of one migration to one
	// peer arrive in order (QUICMesh: one stream per migration and peer).
	Send(ctx context.Context, to NodeID, frame []byte) error
	// FetchModule fetches module bytes by digest from a peer (verified).
	FetchModule(ctx context.Context, from NodeID, digest string) ([]byte, error)
	// StaticKey is a peer's published X25519 key, verified against its node key.
	StaticKey(node NodeID) (*ecdh.PublicKey, error)
	// Forward delivers an event to a daemon on another node.
	Forward(ctx context.Context, to NodeID, origin uint64, ev engine.Event) ([]engine.Output, error)
	// FlipRoute points the daemon's route at its new node; this node then
	// answers strays with "moved".
	FlipRoute(origin uint64, to NodeID)
	// GoLive announces that the daemon now lives on this node.
	GoLive(origin uint64)
}

// Hooks let the node follow a daemon's channel subscriptions across a move
// (channels arrive in a later round); nil hooks do nothing.
type Hooks struct {
	Unsubscribe func(origin uint64)
	Resubscribe func(origin uint64)
	// Released runs on the source after the daemon was handed over and
	// stopped here (the node forgets its record).
	Released func(origin uint64)
	// Admit, when set, runs on the target as an inbound migration asks
	// to land: an error refuses it for a reason of the node's own (a
	// draining node), answered TargetUnavailable with the error's text.
	// It must be quick and must not block.
	Admit func(origin uint64) error
}

// Config configures a Migrator.
type Config struct {
	Runtime   *engine.Runtime
	Mesh      Mesh
	StaticKey *ecdh.PrivateKey // this node's X25519 key: opens sealed identities
	Logger    *slog.Logger
	Limits    protocol.Limits
	Timing    protocol.Timing
	Hooks     Hooks
	// Tick is how often timeouts and retransmissions are looked at.
	Tick time.Duration
	// Linger keeps a finished migration's machines so retried messages
	// are still answered (SPEC R-M12); after it the migration is forgotten
	// (MigrationPhase no longer knows it).
	Linger time.Duration
	// InboundBudget caps the memory all inbound migrations together hold
	// on this node before their daemons are live (snapshot reassembly and
	// staged pre-copy bases); 0 means DefaultInboundBudget. A migration
	// past it is answered NotReady, and its source retries with backoff.
	InboundBudget uint64
	// OutputsGrace is how long after the handover the source still waits
	// for the outputs of replayed events before answering their senders
	// ErrOutputsLost. The outputs travel ahead of the target's ActivateAck
	// on the same stream, so they are normally already there; the grace
	// covers a Complete from a third-node orchestrator overtaking them.
	OutputsGrace time.Duration
	// RequireExpected makes this node a target only for daemons announced
	// with ExpectMigration or RegisterMigrationTargetIdentity; by default
	// any authenticated member may move a daemon here.
	RequireExpected bool
	// MaxFrozen is how many daemons this node keeps frozen for migrations
	// at once (0: DefaultMaxFrozen(); negative: no limit). A migration
	// past it waits, its daemon still running, before it freezes, so the
	// pause of each frozen daemon does not grow with how many migrations
	// run beside it.
	MaxFrozen int
}

// Options of one migration (mirroring the reference API). The zero value
// is the safe default: the identity is sealed to the target and a target
// that answers NotReady is retried; every field only opts out or tunes.
type Options struct {
	// SkipIdentityTransport does not seal the daemon key to the target:
	// the target must have the identity registered with
	// RegisterMigrationTargetIdentity.
	SkipIdentityTransport bool
	// NoRetryNotReady surfaces a target's NotReady at once instead of
	// retrying it with backoff (SPEC R-M8).
	NoRetryNotReady bool
	// Retry tunes the NotReady backoff; zero fields take the defaults.
	Retry protocol.RetryPolicy
	// KindDigest is the daemon's module digest; required only when this
	// node is not the source.
	KindDigest string
	// PreCopyThreshold: a daemon with more live memory than this is
	// pre-copied (0 means DefaultPreCopyThreshold; negative never).
	// Pre-copy needs this node to be the source.
	PreCopyThreshold int64
	// PreCopyRounds bounds the rounds of dirtied pages sent after the base
	// while the daemon runs (0 means DefaultPreCopyRounds; negative none:
	// base, then freeze).
	PreCopyRounds int
	// PreCopyDirtyBytes: once a round finds at most this many dirtied
	// bytes the daemon is frozen (0 means DefaultPreCopyDirtyBytes).
	PreCopyDirtyBytes int64
}

// DefaultOptions is Options{}: seal the identity, retry NotReady. It stays
// for callers that read better with a name.
func DefaultOptions() Options { return Options{} }

// Errors.
var (
	ErrClosed           = errors.New("migrator: closed")
	ErrNoSuchDaemon     = errors.New("migrator: daemon not on the source node")
	ErrOutputsLost      = errors.New("migrator: the event was applied on the target but its outputs were not reported back")
	ErrAlreadyMigrating = errors.New("migrator: daemon already migrating")
	// ErrNotDelivered marks a Mesh.Forward failure where the event surely
	// did not reach the peer (no connection), so sending again is safe.
	ErrNotDelivered = errors.New("migrator: not delivered")
)

// Migrator runs the migrations a node takes part in.
type Migrator struct {
	cfg  Config
	self NodeID

	mu         sync.Mutex
	runs       map[uint64]*run
	byOrigin   map[uint64]*Handle // latest orchestrated migration per daemon
	registered map[regKey]identity.Identity
	expected   map[uint64]string // origin → kind digest
	peers      map[NodeID]*peerQueue
	closed     bool
	pack       *packer

	// Pre-copy state: the target machines of pre-copies here (being
	// received or staged), and sources waiting for acknowledgements.
	staged      map[uint64]*staged
	precopyAcks map[uint64]chan precopyAckIn
	inbound     *inbound
	// starting holds the daemons whose StartMigrationWith runs (pre-copy
	// included) and has no Handle in byOrigin yet.
	starting map[uint64]struct{}

	// frozen holds a token per daemon frozen here for a migration
	// (frozen.go); nil when Config.MaxFrozen is negative.
	frozen chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

type regKey struct {
	kind   string
	origin uint64
}

// New starts a migrator; Close stops it.
func New(cfg Config) (*Migrator, error) {
	if cfg.Runtime == nil || cfg.Mesh == nil {
		return nil, fmt.Errorf("migrator: Runtime and Mesh are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 30 * time.Second
	}
	if cfg.OutputsGrace <= 0 {
		cfg.OutputsGrace = 5 * time.Second
	}
	if cfg.Timing.PeerTimeout == 0 {
		cfg.Timing.PeerTimeout = 10 * time.Second
	}
	if cfg.InboundBudget == 0 {
		cfg.InboundBudget = DefaultInboundBudget
	}
	pk, err := newPacker()
	if err != nil {
		return nil, err
	}
	m := &Migrator{pack: pk, staged: make(map[uint64]*staged), precopyAcks: make(map[uint64]chan precopyAckIn),
		starting: make(map[uint64]struct{}), inbound: newInbound(cfg.InboundBudget),
		cfg: cfg, self: cfg.Mesh.Self(),
		runs: make(map[uint64]*run), byOrigin: make(map[uint64]*Handle),
		registered: make(map[regKey]identity.Identity), expected: make(map[uint64]string),
		peers: make(map[NodeID]*peerQueue), stop: make(chan struct{}),
		frozen: newFrozenSlots(cmp.Or(cfg.MaxFrozen, DefaultMaxFrozen())),
	}
	m.wg.Add(1)
	go m.ticker()
	return m, nil
}

// Close stops every background task; migrations in flight are left to
// their timeouts on the other nodes.
func (m *Migrator) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.stop)
	peers := m.peers
	m.peers = map[NodeID]*peerQueue{}
	m.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	m.wg.Wait()
	m.pack.close()
}

// RegisterMigrationTargetIdentity lets this node receive a daemon of kind
// without identity transport: the key comes from here (SPEC R-M6).
func (m *Migrator) RegisterMigrationTargetIdentity(kind string, id identity.Identity) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.registered[regKey{kind, id.Origin()}] = id
}

// ExpectMigration records that origin of kind may arrive here with its key
// in a sealed envelope (SPEC R-M6).
func (m *Migrator) ExpectMigration(kind string, origin uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expected[origin] = kind
}

// MigrationPhase is the phase of the latest migration this node
// orchestrated for origin.
func (m *Migrator) MigrationPhase(origin uint64) (protocol.Phase, bool) {
	m.mu.Lock()
	h := m.byOrigin[origin]
	m.mu.Unlock()
	if h == nil {
		return 0, false
	}
	return h.Phase(), true
}

// StartMigration moves origin from source to target with default options.
func (m *Migrator) StartMigration(ctx context.Context, origin uint64, source, target NodeID) (*Handle, error) {
	return m.StartMigrationWith(ctx, origin, source, target, DefaultOptions())
}

// StartMigrationWith moves origin from source to target; this node
// orchestrates (it may also be the source or the target).
func (m *Migrator) StartMigrationWith(ctx context.Context, origin uint64, source, target NodeID, opts Options) (*Handle, error) {
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	id := binary.LittleEndian.Uint64(idb[:]) | 1
	started := time.Now()
	// Refused before pre-copy: a second start must not ship a base first.
	if err := m.claimStart(origin); err != nil {
		return nil, err
	}
	defer m.releaseStart(origin)
	var pre precopyResult
	if d, err := m.cfg.Runtime.Daemon(origin); err == nil && source == m.self && m.wantPreCopy(d, opts) {
		if pre, err = m.precopy(ctx, id, d, target, opts); err != nil {
			m.cfg.Logger.Info("pre-copy skipped", "daemon", d.ID(), "err", err)
			pre = precopyResult{}
		}
	}
	kind := opts.KindDigest
	if kind == "" {
		var err error
		if kind, err = m.kindOf(ctx, origin, source); err != nil {
			return nil, err
		}
	}
	retry := opts.Retry
	retry.Disabled = opts.NoRetryNotReady
	plan := wire.Plan{Origin: origin, KindDigest: kind, Source: source, Target: target, Orchestrator: m.self, TransportIdentity: !opts.SkipIdentityTransport}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	o, out, err := protocol.NewOrchestrator(protocol.OrchestratorConfig{
		ID: id, Plan: plan, Retry: retry, Timing: m.cfg.Timing,
	}, time.Now())
	if err != nil {
		return nil, err
	}
	// A new attempt starts clean: an earlier failure must not leak into
	// its result (SPEC R-M9).
	m.cfg.Runtime.RecordMigrationFailure(origin, nil)
	r := m.runFor(id)
	r.orch = o
	r.base = pre.base
	r.stats.PreCopied = pre.base != nil
	pre.record(&r.stats)
	h := &Handle{m: m, r: r, origin: origin, started: started, done: make(chan struct{})}
	r.handle = h
	m.byOrigin[origin] = h
	m.apply(r, roleOrch, out)
	return h, nil
}

func (m *Migrator) wantPreCopy(d *engine.Daemon, opts Options) bool {
	th := opts.PreCopyThreshold
	if th == 0 {
		th = DefaultPreCopyThreshold
	}
	if th < 0 || d.Kind().Cooperative() {
		return false
	}
	return int64(d.Stats().MemoryBytes) > th
}

// kindOf asks the source for the daemon's kind: locally when this node is
// the source, otherwise the caller must know it (the node passes it in
// through its own API; here we only support local lookup or a digest
// already registered under the daemon).
func (m *Migrator) kindOf(_ context.Context, origin uint64, source NodeID) (string, error) {
	if source == m.self {
		d, err := m.cfg.Runtime.Daemon(origin)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoSuchDaemon, err)
		}
		return string(d.Kind().Digest), nil
	}
	return "", fmt.Errorf("%w: orchestrating from another node needs Options.KindDigest", ErrNoSuchDaemon)
}

// PeerDown tells the running migrations that membership declared node gone.
func (m *Migrator) PeerDown(node NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		if r.src != nil {
			out, err := r.src.Handle(protocol.PeerDown{Node: node}, time.Now())
			m.logErr(r, "source", err)
			m.apply(r, roleSource, out)
		}
	}
}

// Receive takes one frame from a peer (the node's migration stream handler
// calls it for every frame).
func (m *Migrator) Receive(from NodeID, frame []byte) error {
	if len(frame) == 0 {
		return ErrBadFrame
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	switch frame[0] {
	case frameMessage:
		msg, err := wire.Decode(frame[1:])
		if err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.dispatch(from, msg)
		return nil
	case framePrecopy:
		msg, err := wire.Decode(frame[1:])
		if err != nil {
			return err
		}
		c, ok := msg.(wire.SnapshotChunk)
		if !ok {
			return fmt.Errorf("%w: pre-copy frame holds a %v", ErrBadFrame, msg.Kind())
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.receivePrecopy(from, c)
	case framePrecopyAck:
		return m.receivePrecopyAck(from, frame[1:])
	case framePrecopyRound:
		msg, err := wire.Decode(frame[1:])
		if err != nil {
			return err
		}
		c, ok := msg.(wire.SnapshotChunk)
		if !ok {
			return fmt.Errorf("%w: pre-copy round frame holds a %v", ErrBadFrame, msg.Kind())
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.receiveRound(from, c)
	case frameOutputs:
		rep, err := decodeReport(frame[1:])
		if err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if r := m.runs[rep.ID]; r != nil && r.src != nil && from == r.plan().Target {
			r.resolveSeq(rep)
		}
		return nil
	}
	return fmt.Errorf("%w: type %d", ErrBadFrame, frame[0])
}

func (m *Migrator) ticker() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.mu.Lock()
			for id, r := range m.runs {
				if r.orch != nil {
					m.apply(r, roleOrch, r.orch.Tick(now))
				}
				if r.src != nil {
					m.apply(r, roleSource, r.src.Tick(now))
				}
				if r.tgt != nil {
					m.apply(r, roleTarget, r.tgt.Tick(now))
				}
				switch {
				case !r.allDone():
					// A new attempt (a NotReady retry) reuses the run.
					r.finishedAt = time.Time{}
				case r.finishedAt.IsZero():
					r.finishedAt = now
					m.finishRun(r)
				case now.Sub(r.finishedAt) > m.cfg.Linger:
					m.forgetRun(id, r)
				}
			}
			drop := m.expirePrecopy(now)
			m.mu.Unlock()
			for _, st := range drop {
				st.Discard(context.Background())
			}
		}
	}
}

func (m *Migrator) logErr(r *run, role string, err error) {
	if err != nil {
		m.cfg.Logger.Debug("migration message refused", "migration", logID(r.id), "role", role, "err", err)
	}
}
