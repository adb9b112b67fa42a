// Package host runs wasmesh daemons inside a Go program: stateful
// WebAssembly modules written against the wasmesh ABI (package abi), each
// with its own ed25519 identity, whose outputs form a verifiable hash chain
// (package host/chain) and whose whole state can be snapshotted and
// restored without the guest's help.
//
// A Runtime is ready as soon as New returns: register modules, spawn
// daemons, deliver events. Each daemon processes one event at a time, in
// arrival order; a failed event is rolled back and returned as an
// *EventError. Daemons are boxed in by Limits (memory cap, CPU budget per
// event, output caps) and have no filesystem, sockets or processes.
//
// The daemon's key never leaves the runtime: snapshots come out signed
// (Daemon.Snapshot) and Restore takes the seed the daemon was spawned with.
// A cluster of nodes that move daemons between machines is package node.
package host

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// The data types are the engine's own (aliases), so values and errors pass
// between this package and the rest of wasmesh unchanged.
type (
	// Event is one input to a daemon: the sender's origin hash (0 for an
	// operator), the sender's sequence number and the payload.
	Event = engine.Event
	// Output is one output with its causal chain link.
	Output = engine.Output
	// Outputs is a reusable output buffer for Daemon.DeliverInto.
	Outputs = engine.Outputs
	// Limits box a daemon in; zero fields take the runtime's defaults.
	Limits = engine.Limits
	// Stats are a daemon's counters.
	Stats = engine.Stats
	// LogLine is one line a guest logged.
	LogLine = engine.LogLine
	// Kind is a registered module: its digest and its validated ABI info.
	Kind = engine.Kind
	// Digest names a module by content ("sha256:<hex>").
	Digest = engine.Digest
	// EventError is a failed event: the cause (one of the Err* event
	// failures below), the guest's message and whether it was rolled back.
	EventError = engine.EventError
	// Observer is a callback registered with Daemon.Observe.
	Observer = engine.Observer
)

// Defaults of Limits.
const (
	DefaultMaxMemoryBytes = engine.DefaultMaxMemoryBytes
	DefaultEventTimeout   = engine.DefaultEventTimeout
)

// Errors; test with errors.Is. They are the engine's, so errors from a
// node match them too.
var (
	ErrNotReady                 = engine.ErrNotReady
	ErrShuttingDown             = engine.ErrShuttingDown
	ErrDaemonNotFound           = engine.ErrDaemonNotFound
	ErrDuplicateOrigin          = engine.ErrDuplicateOrigin
	ErrUnknownKind              = engine.ErrUnknownKind
	ErrModuleRefused            = engine.ErrModuleRefused
	ErrSnapshotIdentityMismatch = engine.ErrSnapshotIdentityMismatch
	ErrSnapshotModuleMismatch   = engine.ErrSnapshotModuleMismatch
	ErrSnapshotUnsupported      = engine.ErrSnapshotUnsupported
	ErrDaemonFailed             = engine.ErrDaemonFailed
	ErrDaemonStopped            = engine.ErrDaemonStopped
	ErrMemoryLimit              = engine.ErrMemoryLimit
	ErrBadEvent                 = engine.ErrBadEvent

	// Event failures (EventError.Cause).
	ErrEventTimeout  = engine.ErrEventTimeout
	ErrGuestTrap     = engine.ErrGuestTrap
	ErrGuestError    = engine.ErrGuestError
	ErrBadPointer    = engine.ErrBadPointer
	ErrOutputLimit   = engine.ErrOutputLimit
	ErrReadingsLimit = engine.ErrReadingsLimit
	ErrInputTooLarge = engine.ErrInputTooLarge
	ErrWrongMoment   = engine.ErrWrongMoment
	ErrGuestExit     = engine.ErrGuestExit

	// ErrBadSeed is a SpawnOptions.Seed that is not 32 bytes, or a
	// Restore without one.
	ErrBadSeed = errors.New("host: bad seed")
	// ErrBadSnapshot is snapshot bytes that do not decode, exceed the
	// limits or whose signature does not verify.
	ErrBadSnapshot = errors.New("host: bad snapshot")
)

// Config configures a Runtime. The zero value is a sensible default.
type Config struct {
	// CacheDir keeps the compilation cache on disk, so a restarted program
	// does not recompile its modules; empty is an in-memory cache.
	CacheDir string
	// Logger receives the runtime's and the guests' log lines; nil is
	// slog.Default().
	Logger *slog.Logger
	// Limits are the defaults for daemons that do not set their own.
	Limits Limits
	// Clock and Rand feed the guests' clock and random imports; nil is the
	// system clock and crypto/rand. Fixing both makes a run reproducible.
	Clock func() time.Time
	Rand  io.Reader
}

// SpawnOptions are a new daemon's settings.
type SpawnOptions struct {
	// Name is an optional label (abi names: see node.CheckName); the
	// runtime does not make it unique.
	Name string
	// Config is handed to the guest's wasmesh_init.
	Config []byte
	// Limits override the runtime's defaults field by field.
	Limits Limits
	// Seed is the daemon's 32-byte ed25519 seed; nil generates a fresh
	// identity. Keep it to Restore the daemon's snapshots later. The
	// runtime keeps its own copy; the caller may clear this one.
	Seed []byte
}

// Runtime runs daemons. It is safe for concurrent use.
type Runtime struct {
	rt *engine.Runtime
}

// New makes a ready runtime.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	rt, err := engine.New(ctx, engine.Config{
		CacheDir: cfg.CacheDir, Logger: cfg.Logger, Limits: cfg.Limits, Clock: cfg.Clock, Rand: cfg.Rand,
	})
	if err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		rt.Close(context.Background())
		return nil, err
	}
	return &Runtime{rt: rt}, nil
}

// RegisterModule validates a wasm module against the ABI and registers it
// under its digest and, when kind is not empty, under that name. A refused
// module is ErrModuleRefused with every reason.
func (r *Runtime) RegisterModule(ctx context.Context, module []byte, kind string) (*Kind, error) {
	return r.rt.RegisterModule(ctx, module, kind)
}

// Kind resolves a kind name or digest.
func (r *Runtime) Kind(kindOrDigest string) (*Kind, error) { return r.rt.Kind(kindOrDigest) }

// Kinds lists the registered kinds.
func (r *Runtime) Kinds() []*Kind { return r.rt.Kinds() }

// Spawn starts a daemon of a kind (a name or digest): it instantiates the
// module and runs its initialization with opts.Config.
func (r *Runtime) Spawn(ctx context.Context, kind string, opts SpawnOptions) (*Daemon, error) {
	id, err := newIdentity(opts.Seed)
	if err != nil {
		return nil, err
	}
	eo := engineOptions(opts)
	if !strings.HasPrefix(kind, "sha256:") {
		eo.KindName = kind
	}
	d, err := r.rt.Spawn(ctx, kind, id, eo)
	if err != nil {
		return nil, err
	}
	return &Daemon{d: d}, nil
}

// Restore brings a daemon back from snapshot bytes (Daemon.Snapshot) of a
// registered kind, under the seed it was spawned with: it continues from
// the snapshot's state, chain, counters and name (unless opts.Name is set). A snapshot of another key is
// ErrSnapshotIdentityMismatch, of another module ErrSnapshotModuleMismatch;
// bytes that do not verify are ErrBadSnapshot.
func (r *Runtime) Restore(ctx context.Context, kind string, data []byte, opts SpawnOptions) (*Daemon, error) {
	if opts.Seed == nil {
		return nil, fmt.Errorf("%w: Restore needs the daemon's seed", ErrBadSeed)
	}
	k, err := r.rt.Kind(kind)
	if err != nil {
		return nil, err
	}
	lim := snapshot.DefaultLimits()
	if pages := opts.Limits.Or(r.rt.DefaultLimits()).MemoryPages(); pages > 0 && pages < lim.MaxMemoryPages {
		lim.MaxMemoryPages = pages
	}
	snap, err := snapshot.Decode(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if got := engine.DigestFromBytes(snap.ModuleDigest); got != k.Digest {
		return nil, fmt.Errorf("%w: snapshot is of module %s, kind %s is %s", ErrSnapshotModuleMismatch, got, kind, k.Digest)
	}
	id, err := newIdentity(opts.Seed)
	if err != nil {
		return nil, err
	}
	d, err := r.rt.SpawnFromSnapshot(ctx, string(k.Digest), id, snap, engineOptions(opts))
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		d.SetName(d.Carried().Name)
	}
	return &Daemon{d: d}, nil
}

// Daemon returns a running daemon by its origin hash (Daemon.Origin).
func (r *Runtime) Daemon(origin uint64) (*Daemon, error) {
	d, err := r.rt.Daemon(origin)
	if err != nil {
		return nil, err
	}
	return &Daemon{d: d}, nil
}

// Daemons lists the running daemons.
func (r *Runtime) Daemons() []*Daemon {
	ds := r.rt.Daemons()
	out := make([]*Daemon, len(ds))
	for i, d := range ds {
		out[i] = &Daemon{d: d}
	}
	return out
}

// Deliver sends one event to a daemon by origin and returns its outputs.
func (r *Runtime) Deliver(ctx context.Context, origin uint64, ev Event) ([]Output, error) {
	return r.rt.Deliver(ctx, origin, ev)
}

// Snapshot captures a daemon by origin: the encoded snapshot, signed by
// the daemon's key.
func (r *Runtime) Snapshot(ctx context.Context, origin uint64) ([]byte, error) {
	d, err := r.rt.Daemon(origin)
	if err != nil {
		return nil, err
	}
	return d.EncodeSnapshot(ctx)
}

// Stop stops and removes a daemon.
func (r *Runtime) Stop(ctx context.Context, origin uint64) error { return r.rt.Stop(ctx, origin) }

// Shutdown stops every daemon and forgets the kinds; the runtime refuses
// work afterwards. It is idempotent.
func (r *Runtime) Shutdown(ctx context.Context) error { return r.rt.Shutdown(ctx) }

// Close shuts down and releases the wasm engine.
func (r *Runtime) Close(ctx context.Context) error { return r.rt.Close(ctx) }

// Daemon is one running daemon. Its methods are safe for concurrent use;
// events are applied one at a time.
type Daemon struct {
	d *engine.Daemon
}

// ID is the daemon's id: its origin hash in hex.
func (d *Daemon) ID() string { return d.d.ID() }

// Name is the label it was spawned with.
func (d *Daemon) Name() string { return d.d.Name() }

// Origin is the daemon's 64-bit address (abi.OriginHash of its entity id).
func (d *Daemon) Origin() uint64 { return d.d.Origin() }

// EntityID is the daemon's ed25519 public key.
func (d *Daemon) EntityID() [abi.EntityIDSize]byte { return d.d.EntityID() }

// Kind is the module the daemon runs.
func (d *Daemon) Kind() *Kind { return d.d.Kind() }

// KindName is the kind name it was spawned as (empty for a bare digest).
func (d *Daemon) KindName() string { return d.d.KindName() }

// Limits are the daemon's effective limits.
func (d *Daemon) Limits() Limits { return d.d.Limits() }

// Stats are the daemon's counters.
func (d *Daemon) Stats() Stats { return d.d.Stats() }

// Logs are the daemon's last log lines, oldest first.
func (d *Daemon) Logs() []LogLine { return d.d.Logs() }

// LogsAfter returns the lines logged since cursor (0: all that are kept)
// and the cursor to pass next time, for following a daemon's log.
func (d *Daemon) LogsAfter(cursor uint64) ([]LogLine, uint64) { return d.d.LogsAfter(cursor) }

// Deliver applies one event and returns its outputs.
func (d *Daemon) Deliver(ctx context.Context, ev Event) ([]Output, error) {
	return d.d.Deliver(ctx, ev)
}

// DeliverInto is Deliver into a reused buffer: out's items and payloads
// are valid until the next DeliverInto with the same out.
func (d *Daemon) DeliverInto(ctx context.Context, ev Event, out *Outputs) error {
	return d.d.DeliverInto(ctx, ev, out)
}

// ChainHead is the link of the daemon's last output and its hash, which a
// verifier of the next outputs starts from (chain.Validate).
func (d *Daemon) ChainHead() (chain.Link, [32]byte) { return d.d.ChainHead() }

// Observe registers fn to run after every applied event with the event and
// its outputs (valid during the call only); Close the Observer to stop.
func (d *Daemon) Observe(fn func(ev Event, outs []Output)) *Observer { return d.d.Observe(fn) }

// Snapshot captures the daemon's whole state: the encoded snapshot,
// signed by the daemon's key, that Runtime.Restore takes.
func (d *Daemon) Snapshot(ctx context.Context) ([]byte, error) { return d.d.EncodeSnapshot(ctx) }

func newIdentity(seed []byte) (identity.Identity, error) {
	if seed == nil {
		return identity.Generate()
	}
	if len(seed) != ed25519.SeedSize {
		return identity.Identity{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadSeed, len(seed), ed25519.SeedSize)
	}
	return identity.FromSeed(seed)
}

func engineOptions(o SpawnOptions) engine.SpawnOptions {
	return engine.SpawnOptions{Name: o.Name, Config: o.Config, Limits: o.Limits}
}
