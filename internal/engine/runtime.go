// Package engine is the per-node wasmesh runtime: the lifecycle gate, the
// module store and compile cache, daemon instances with their causal chains,
// transparent and cooperative snapshots, sandbox limits and host functions.
// It knows nothing about the network.
package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/instrument"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// State is the runtime lifecycle state (SPEC R-L1).
type State int32

const (
	Registering State = iota
	Ready
	ShuttingDown
)

func (s State) String() string {
	switch s {
	case Registering:
		return "registering"
	case Ready:
		return "ready"
	case ShuttingDown:
		return "shutting-down"
	}
	return "unknown"
}

// Config configures a Runtime. Zero values are sensible defaults.
type Config struct {
	// CacheDir keeps wazero's compilation cache on disk so a restarted node
	// does not recompile; empty means an in-memory cache.
	CacheDir string
	Logger   *slog.Logger
	// Limits are the defaults for daemons that do not set their own.
	Limits Limits
	// WatchdogTick is how often an overrunning call is looked for while
	// calls run; a call is stopped no earlier than its budget and about
	// one tick past it at most (the watchdog's epoch bounds when it began).
	WatchdogTick time.Duration
	// Clock and Rand feed the guest's now/random imports and WASI clocks.
	Clock func() time.Time
	Rand  io.Reader
	// OnStart runs during Start before the runtime is published Ready
	// (the node installs its migration handler here); the returned undo
	// runs if Start loses a race to Shutdown, and at Shutdown.
	OnStart func() (undo func())
	// Journal, when set, receives every committed event so the embedder
	// can make inputs durable before it acknowledges them (see Daemon.Redo).
	Journal InputJournal
	// OnSends, when set, is called with a daemon's origin after an event
	// of it committed messages to its outbox (outside every lock), so the
	// embedder can wake whatever delivers them.
	OnSends func(origin uint64)
	// DefaultGrants are the grants of a daemon whose SpawnOptions.Grants
	// is zero: every way a daemon comes to the runtime (spawn, restore,
	// a migration's arrival, which builds its options itself) gets them,
	// so the node states its policy once.
	DefaultGrants Grants
	// Hooks are for tests only.
	Hooks *TestHooks
}

// TestHooks let tests make lifecycle races deterministic (SPEC R-L8).
type TestHooks struct {
	// SpawnStall runs inside Spawn after the instance is built and before
	// it is registered.
	SpawnStall func()
	// StartStall runs inside Start after OnStart and before Ready is published.
	StartStall func()
}

// Runtime runs daemons on one node.
type Runtime struct {
	cfg      Config
	epoch    time.Time
	wz       wazero.Runtime
	cache    wazero.CompilationCache
	modules  *moduleStore
	watchdog *watchdog
	outputs  outputsPool
	zeroPage []byte
	// moduleConfig is the per-instance config's immutable base.
	moduleConfig wazero.ModuleConfig

	mu       sync.RWMutex
	state    State
	daemons  map[uint64]*Daemon
	undo     func()
	notReady bool // test hook: refuse inbound migrations
	failures map[uint64]error
}

// New creates a runtime in the Registering state.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.WatchdogTick <= 0 {
		cfg.WatchdogTick = 2 * time.Millisecond
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	var cache wazero.CompilationCache
	var err error
	if cfg.CacheDir != "" {
		cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("host: compilation cache %s: %w", cfg.CacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	wz := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCoreFeatures(instrument.CoreFeatures).
		WithCloseOnContextDone(false))
	if _, err := hostModule(wz).Instantiate(ctx); err != nil {
		_ = wz.Close(ctx)
		return nil, fmt.Errorf("host: instantiate host module: %w", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, wz); err != nil {
		_ = wz.Close(ctx)
		return nil, fmt.Errorf("host: instantiate WASI: %w", err)
	}
	rt := &Runtime{
		cfg:      cfg,
		epoch:    time.Now(),
		wz:       wz,
		cache:    cache,
		modules:  newModuleStore(),
		zeroPage: make([]byte, snapshot.PageSize),
		// _initialize is called explicitly, and only when needed.
		moduleConfig: wazero.NewModuleConfig().WithName("").WithStartFunctions(),
		daemons:      make(map[uint64]*Daemon),
		failures:     make(map[uint64]error),
	}
	rt.watchdog = newWatchdog(cfg.WatchdogTick, rt.nanotime)
	return rt, nil
}

func (rt *Runtime) nanotime() int64          { return int64(time.Since(rt.epoch)) }
func (rt *Runtime) monoOf(t time.Time) int64 { return int64(t.Sub(rt.epoch)) }

// State returns the lifecycle state.
func (rt *Runtime) State() State {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.state
}

// Logger is the runtime's logger.
func (rt *Runtime) Logger() *slog.Logger { return rt.cfg.Logger }

// DefaultLimits are the limits daemons get unless they set their own.
func (rt *Runtime) DefaultLimits() Limits { return rt.cfg.Limits }

func (rt *Runtime) gate() error {
	switch rt.state {
	case Registering:
		return ErrNotReady
	case ShuttingDown:
		return ErrShuttingDown
	}
	return nil
}

// Start publishes Ready. It runs OnStart first so the migration handler is
// installed before anyone can see Ready; it is idempotent, and a Start that
// loses a race to Shutdown undoes what it installed (SPEC R-L2).
func (rt *Runtime) Start(ctx context.Context) error {
	rt.mu.RLock()
	st := rt.state
	rt.mu.RUnlock()
	switch st {
	case Ready:
		return nil
	case ShuttingDown:
		return ErrShuttingDown
	}
	var undo func()
	if rt.cfg.OnStart != nil {
		undo = rt.cfg.OnStart()
	}
	if h := rt.cfg.Hooks; h != nil && h.StartStall != nil {
		h.StartStall()
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch rt.state {
	case ShuttingDown:
		if undo != nil {
			undo()
		}
		return ErrShuttingDown
	case Ready:
		if undo != nil {
			undo() // a concurrent Start already installed its own
		}
		return nil
	}
	rt.undo = undo
	rt.state = Ready
	return nil
}

// Shutdown stops every daemon, clears kinds and cached migration failures,
// removes what Start installed, and is idempotent (SPEC R-L3).
func (rt *Runtime) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	if rt.state == ShuttingDown {
		rt.mu.Unlock()
		return nil
	}
	rt.state = ShuttingDown
	daemons := rt.daemons
	rt.daemons = make(map[uint64]*Daemon)
	rt.failures = make(map[uint64]error)
	undo := rt.undo
	rt.undo = nil
	rt.mu.Unlock()
	if undo != nil {
		undo()
	}
	for _, d := range daemons {
		d.stop(ctx)
	}
	for _, k := range rt.modules.clear() {
		k.close(ctx)
	}
	return nil
}

// Close shuts down and releases the wasm engine.
func (rt *Runtime) Close(ctx context.Context) error {
	err := rt.Shutdown(ctx)
	rt.watchdog.stop()
	if cerr := rt.wz.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := rt.cache.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// RegisterModule validates module bytes and registers them under their
// digest, and under alias when given. Allowed while Registering or Ready.
func (rt *Runtime) RegisterModule(ctx context.Context, module []byte, alias string) (*Kind, error) {
	rt.mu.RLock()
	st := rt.state
	rt.mu.RUnlock()
	if st == ShuttingDown {
		return nil, ErrShuttingDown
	}
	k, err := rt.modules.add(module, alias)
	if err != nil {
		return nil, err
	}
	// Compile now with the default cap so spawn pays only instantiation and
	// a module that wazero rejects is refused at registration.
	if _, err := k.compile(ctx, rt.wz, rt.cfg.Limits.MemoryPages()); err != nil {
		return nil, err
	}
	return k, nil
}

// Kind resolves a kind name or digest.
func (rt *Runtime) Kind(kindOrDigest string) (*Kind, error) { return rt.modules.lookup(kindOrDigest) }

// Kinds lists registered kinds.
func (rt *Runtime) Kinds() []*Kind { return rt.modules.list() }

// KindAliases lists the names that point at a digest.
func (rt *Runtime) KindAliases(d Digest) []string { return rt.modules.aliasesOf(d) }

// SpawnOptions configure one daemon.
type SpawnOptions struct {
	Name   string
	Config []byte // bytes for wasmesh_init
	Limits Limits // zero fields take the runtime's defaults
	Grants Grants
	// Interceptor, when set, is installed before the daemon becomes visible
	// (a migration target holds events until the daemon goes live).
	Interceptor Interceptor
	// KindName is the kind name shown for the daemon; it travels in its
	// snapshots. Empty takes the one a snapshot carries, if any.
	KindName string
}

// Grants are the optional host capabilities a daemon may use (SPEC R-T1).
// A module importing a capability it is not granted is refused at spawn
// and at every restore.
type Grants struct {
	// Publish allows the publish import.
	Publish bool
}

func (rt *Runtime) limitsFor(l Limits) (Limits, error) {
	if err := l.Validate(); err != nil {
		return Limits{}, err
	}
	return l.Or(rt.cfg.Limits), nil
}

func checkGrants(k *Kind, g Grants) error {
	for _, im := range k.Info.Imports {
		if im.Module == abi.ImportModule && im.Name == abi.ImportPublish && !g.Publish {
			return fmt.Errorf("%w: %s.%s (channels are not granted to this daemon)", ErrNotGranted, im.Module, im.Name)
		}
	}
	return nil
}

// Spawn starts a daemon of a kind: instantiate, _initialize if exported,
// then wasmesh_init with the config bytes.
func (rt *Runtime) Spawn(ctx context.Context, kindOrDigest string, id identity.Identity, opts SpawnOptions) (*Daemon, error) {
	return rt.spawn(ctx, kindOrDigest, id, opts, nil)
}

// SpawnFromSnapshot continues a daemon from a snapshot. The snapshot's
// entity id is checked against id before any side effect, then its module
// digest against the kind (SPEC R-L5). wasmesh_init is not called. The
// counters and log lines the snapshot's annotations carry are restored; its
// name and kind name are offered through Daemon.Carried (the node decides
// on the name; the kind name is taken unless opts gives one). The
// daemon keeps the snapshot's page buffers as its first rollback point: the
// caller must not modify them afterwards.
func (rt *Runtime) SpawnFromSnapshot(ctx context.Context, kindOrDigest string, id identity.Identity, snap *snapshot.Snapshot, opts SpawnOptions) (*Daemon, error) {
	if snap == nil {
		return nil, fmt.Errorf("%w: nil snapshot", ErrSnapshotUnsupported)
	}
	if id.IsZero() || snap.EntityID != id.EntityID() {
		return nil, fmt.Errorf("%w: snapshot is of %x", ErrSnapshotIdentityMismatch, snap.EntityID[:8])
	}
	return rt.spawn(ctx, kindOrDigest, id, opts, snap)
}

func (rt *Runtime) spawn(ctx context.Context, kindOrDigest string, id identity.Identity, opts SpawnOptions, snap *snapshot.Snapshot) (*Daemon, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("host: spawn needs an identity")
	}
	d, err := rt.build(ctx, kindOrDigest, id.EntityID(), opts, snap)
	if err != nil {
		return nil, err
	}
	d.id = id
	d.SetInterceptor(opts.Interceptor)
	if err := rt.register(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// build makes a booted daemon that is not yet visible.
func (rt *Runtime) build(ctx context.Context, kindOrDigest string, entity [abi.EntityIDSize]byte, opts SpawnOptions, snap *snapshot.Snapshot) (*Daemon, error) {
	rt.mu.RLock()
	err := rt.gate()
	rt.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	k, err := rt.modules.lookup(kindOrDigest)
	if err != nil {
		return nil, err
	}
	if snap != nil {
		if dg, _ := k.Digest.Bytes(); dg != snap.ModuleDigest {
			return nil, fmt.Errorf("%w: snapshot is of %s, kind is %s", ErrSnapshotModuleMismatch, DigestFromBytes(snap.ModuleDigest), k.Digest)
		}
		if (snap.Mode == snapshot.Cooperative) != k.Cooperative() {
			return nil, fmt.Errorf("%w: %s snapshot for a %s module", ErrSnapshotUnsupported, snap.Mode, k.Info.Mode)
		}
	}
	grants := opts.Grants
	if grants == (Grants{}) {
		grants = rt.cfg.DefaultGrants
	}
	if err := checkGrants(k, grants); err != nil {
		return nil, err
	}
	lim, err := rt.limitsFor(opts.Limits)
	if err != nil {
		return nil, err
	}
	origin := abi.OriginHash(entity)
	rt.mu.RLock()
	_, dup := rt.daemons[origin]
	rt.mu.RUnlock()
	if dup {
		return nil, fmt.Errorf("%w: %016x", ErrDuplicateOrigin, origin)
	}
	v, err := k.compile(ctx, rt.wz, lim.MemoryPages())
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		rt: rt, kind: k, variant: v, entity: entity, origin: origin, idText: abi.FormatOrigin(origin),
		name: opts.Name, kindName: opts.KindName, limits: lim, created: rt.cfg.Clock(),
		head: chain.Genesis(origin), headHash: chain.GenesisHash(origin), horizon: chain.NewHorizon(),
	}
	if err := d.boot(ctx, opts.Config, snap); err != nil {
		return nil, err
	}
	return d, nil
}

// register makes a built daemon visible. Shutdown or a concurrent
// duplicate may have won while it was built (SPEC R-L4): then only this
// daemon is rolled back.
func (rt *Runtime) register(ctx context.Context, d *Daemon) error {
	if h := rt.cfg.Hooks; h != nil && h.SpawnStall != nil {
		h.SpawnStall()
	}
	rt.mu.Lock()
	if err := rt.gate(); err != nil {
		rt.mu.Unlock()
		d.stop(ctx)
		return err
	}
	if _, dup := rt.daemons[d.origin]; dup {
		rt.mu.Unlock()
		d.stop(ctx)
		return fmt.Errorf("%w: %016x", ErrDuplicateOrigin, d.origin)
	}
	// Under rt.mu, after the duplicate check: a Begin for an origin that
	// already runs would supersede the running daemon's journal.
	d.beginJournal()
	rt.daemons[d.origin] = d
	rt.mu.Unlock()
	return nil
}

// boot builds the first instance: fresh (init) or from a snapshot.
func (d *Daemon) boot(ctx context.Context, config []byte, snap *snapshot.Snapshot) error {
	in, err := d.rt.instantiate(ctx, d, d.variant)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		in.close(ctx)
		return err
	}
	switch {
	case snap == nil:
		if err := in.initialize(ctx); err != nil {
			return fail(fmt.Errorf("host: _initialize: %w", err))
		}
		if err := in.runInit(ctx, config); err != nil {
			return fail(fmt.Errorf("host: wasmesh_init: %w", err))
		}
	case snap.Mode == snapshot.Cooperative:
		if err := in.initialize(ctx); err != nil {
			return fail(fmt.Errorf("host: _initialize: %w", err))
		}
		if len(snap.State) > d.limits.MaxInputBytes {
			return fail(fmt.Errorf("%w: cooperative state of %d bytes over the input limit", ErrSnapshotUnsupported, len(snap.State)))
		}
		if err := in.coopRestore(ctx, snap.State); err != nil {
			return fail(fmt.Errorf("host: wasmesh_restore: %w", err))
		}
	default:
		if err := in.apply(snap.MemoryPages, snap.Pages, snap.Globals); err != nil {
			return fail(err)
		}
	}
	if snap != nil {
		d.head, d.headHash = snap.ChainHead, snap.HeadHash
		if d.head.Origin != d.origin {
			return fail(fmt.Errorf("%w: chain head origin %016x", ErrSnapshotIdentityMismatch, d.head.Origin))
		}
		d.horizon = chain.HorizonFrom(snap.Horizon)
		d.inputSeq = snap.InputSeq
		d.snapSeq = snap.Sequence
		d.ledger = append([]snapshot.Subscription(nil), snap.Ledger...)
		d.outbox.fromSnapshot(snap.Outbox)
		d.restoreAnnotationsLocked(snap.Annotations)
	}
	d.inst = in
	if snap != nil && snap.Mode == snapshot.Transparent && !in.tablesMutated() {
		// The snapshot is exactly the state just applied: it is the first
		// rollback checkpoint, shared rather than captured again.
		d.journal.ckpt.borrow(snap)
		d.journal.reset()
		return nil
	}
	// The first rollback point is captured just before the first event,
	// which keeps the copy out of spawn latency.
	d.journal.pending = true
	return nil
}

// Daemon returns a running daemon by origin.
func (rt *Runtime) Daemon(origin uint64) (*Daemon, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	d, ok := rt.daemons[origin]
	if !ok {
		return nil, fmt.Errorf("%w: %016x", ErrDaemonNotFound, origin)
	}
	return d, nil
}

// Daemons lists the running daemons.
func (rt *Runtime) Daemons() []*Daemon {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	out := make([]*Daemon, 0, len(rt.daemons))
	for _, d := range rt.daemons {
		out = append(out, d)
	}
	return out
}

// Deliver sends one event to a daemon (SPEC R-D3).
func (rt *Runtime) Deliver(ctx context.Context, origin uint64, ev Event) ([]Output, error) {
	rt.mu.RLock()
	err := rt.gate()
	d := rt.daemons[origin]
	rt.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("%w: %016x", ErrDaemonNotFound, origin)
	}
	return d.Deliver(ctx, ev)
}

// Snapshot captures a daemon.
func (rt *Runtime) Snapshot(ctx context.Context, origin uint64) (*snapshot.Snapshot, error) {
	rt.mu.RLock()
	err := rt.gate()
	d := rt.daemons[origin]
	rt.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("%w: %016x", ErrDaemonNotFound, origin)
	}
	return d.Snapshot(ctx)
}

// Stop stops and removes a daemon. Stopping during shutdown a daemon the
// sweep already removed is success (SPEC R-L6).
func (rt *Runtime) Stop(ctx context.Context, origin uint64) error {
	rt.mu.Lock()
	d, ok := rt.daemons[origin]
	st := rt.state
	if ok {
		delete(rt.daemons, origin)
	}
	rt.mu.Unlock()
	if !ok {
		if st == ShuttingDown {
			return nil
		}
		return fmt.Errorf("%w: %016x", ErrDaemonNotFound, origin)
	}
	d.stop(ctx)
	return nil
}

// SetMigrationNotReady is the test hook that makes this runtime answer
// inbound migrations with NotReady (SPEC R-L8).
func (rt *Runtime) SetMigrationNotReady(v bool) {
	rt.mu.Lock()
	rt.notReady = v
	rt.mu.Unlock()
}

// AcceptsMigrations reports whether an inbound migration may land now.
func (rt *Runtime) AcceptsMigrations() error {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if err := rt.gate(); err != nil {
		return err
	}
	if rt.notReady {
		return ErrNotReady
	}
	return nil
}

// RecordMigrationFailure caches the last migration failure of a daemon;
// PeekMigrationFailure reads it. Shutdown clears them.
func (rt *Runtime) RecordMigrationFailure(origin uint64, err error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.state == ShuttingDown {
		return
	}
	if err == nil {
		delete(rt.failures, origin)
		return
	}
	rt.failures[origin] = err
}

// PeekMigrationFailure returns the cached failure, if any.
func (rt *Runtime) PeekMigrationFailure(origin uint64) error {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.failures[origin]
}

// IsRefusal reports whether err means a module was refused.
func IsRefusal(err error) bool { return errors.Is(err, ErrModuleRefused) }
