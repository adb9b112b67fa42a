package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/instrument"
)

type phase uint8

const (
	phaseIdle     phase = iota // start section, _initialize
	phaseInit                  // wasmesh_init
	phaseProcess               // wasmesh_process
	phaseSnapshot              // wasmesh_snapshot
	phaseRestore               // wasmesh_restore
)

type instKey struct{}

// instance is one wazero module instance of a daemon. A daemon replaces its
// instance when it rolls back or restores; everything that must survive
// lives on the Daemon.
type instance struct {
	rt   *Runtime
	d    *Daemon
	mod  api.Module
	mem  api.Memory
	meta *instrument.Result

	fnInput, fnProcess, fnInit, fnSnapshot, fnRestore, fnInitialize api.Function

	stopFlag    api.MutableGlobal
	tablesDirty api.Global
	globals     []api.MutableGlobal // parallel to meta.Globals

	callCtx context.Context
	stack   [4]uint64

	// Preemption (see watchdog). armed is the word the watchdog reads:
	// the number of the latest call (callNo) shifted past two bits, one set
	// while it is in flight (armedInFlight) and one once the watchdog
	// preempts it (armedFired). armEpoch is the watchdog epoch the call was
	// armed in, ctxDeadline the monotonic deadline of its context (0 if
	// none); both are written before armed. The watchdog sets the fired bit
	// and the stop flag together under stopMu, so a disarm that sees the
	// bit takes stopMu to clear the flag after it was set: a flag can never
	// leak into the next call. A call the watchdog leaves alone takes no lock.
	armed, armEpoch atomic.Uint64
	ctxDeadline     atomic.Int64
	stopMu          sync.Mutex
	callNo          uint64 // the calling goroutine's

	// Touched only by the watchdog goroutine, under its mu.
	wdLast, wdCall uint64
	wdDeadline     int64

	// Per-call state, touched only by the goroutine making the call.
	phase    phase
	out      *Outputs
	failMsg  string
	logLines int
	state    []byte
	rec      *recorder
	// sends are the event's messages, committed with it (hostsend.go).
	sends     []Send
	sendBytes int
}

func (rt *Runtime) instantiate(ctx context.Context, d *Daemon, v *variant) (*instance, error) {
	in := &instance{rt: rt, d: d, meta: v.meta}
	in.callCtx = context.WithValue(context.Background(), instKey{}, in)
	// The random source is always set: without one wazero seeds a fresh
	// one per instance, which costs more than the rest of instantiation.
	cfg := rt.moduleConfig.WithRandSource(randReader{in})
	if d.kind.Info.UsesWASI {
		// Only WASI reads these; building them costs a config clone each.
		cfg = cfg.WithStdout(&logWriter{in: in, level: abi.LogInfo}).
			WithStderr(&logWriter{in: in, level: abi.LogWarn}).
			WithWalltime(in.walltime, 1).
			WithNanotime(in.nanotime, 1).
			WithNanosleep(in.nanosleep).
			WithOsyield(in.osyield)
	}
	rt.watchdog.track(in)
	in.rec = &recorder{}
	mod, err := rt.wz.InstantiateModule(in.callCtx, v.compiled, cfg)
	if err != nil {
		rt.watchdog.untrack(in)
		if rt.State() == ShuttingDown {
			// The runtime closed its compiled modules under this spawn
			// (wazero: "source module must be compiled"): not the guest's
			// fault, and the caller must see the shutdown.
			return nil, fmt.Errorf("%w: %w", ErrShuttingDown, classifyStartErr(err))
		}
		return nil, classifyStartErr(err)
	}
	in.mod = mod
	in.mem = mod.Memory()
	if in.mem == nil {
		in.close(ctx)
		return nil, fmt.Errorf("%w: no memory export", ErrModuleRefused)
	}
	in.fnInput = mod.ExportedFunction(abi.ExportInput)
	in.fnProcess = mod.ExportedFunction(abi.ExportProcess)
	in.fnInit = mod.ExportedFunction(abi.ExportInit)
	in.fnSnapshot = mod.ExportedFunction(abi.ExportSnapshot)
	in.fnRestore = mod.ExportedFunction(abi.ExportRestore)
	in.fnInitialize = mod.ExportedFunction(abi.ExportInitialize)
	if g, ok := mod.ExportedGlobal(v.meta.StopExport).(api.MutableGlobal); ok {
		in.stopFlag = g
	} else {
		in.close(ctx)
		return nil, fmt.Errorf("%w: instrumented module lacks its preemption flag", ErrModuleRefused)
	}
	if v.meta.TablesDirtyExport != "" {
		in.tablesDirty = mod.ExportedGlobal(v.meta.TablesDirtyExport)
	}
	in.globals = make([]api.MutableGlobal, len(v.meta.Globals))
	for i, g := range v.meta.Globals {
		mg, ok := mod.ExportedGlobal(g.Export).(api.MutableGlobal)
		if !ok {
			in.close(ctx)
			return nil, fmt.Errorf("%w: instrumented module lacks global export %s", ErrModuleRefused, g.Export)
		}
		in.globals[i] = mg
	}
	if v.meta.StartExport != "" {
		// The instrumenter turned the start section into this export so
		// that it runs under the CPU budget like any other guest entry: a
		// start function that never returns fails the spawn, rollback,
		// restore or arrival with ErrEventTimeout instead of hanging it.
		fn := mod.ExportedFunction(v.meta.StartExport)
		if fn == nil {
			in.close(ctx)
			return nil, fmt.Errorf("%w: instrumented module lacks its start export", ErrModuleRefused)
		}
		if err := in.call(ctx, fn, phaseIdle); err != nil {
			in.close(ctx)
			return nil, fmt.Errorf("host: start function: %w", err)
		}
	}
	return in, nil
}

func classifyStartErr(err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w: guest exited with code %d during instantiation", ErrGuestExit, exit.ExitCode())
	}
	return fmt.Errorf("%w: instantiate: %s", ErrGuestTrap, firstLine(err.Error()))
}

func (in *instance) close(ctx context.Context) {
	in.rt.watchdog.untrack(in)
	if in.mod != nil {
		_ = in.mod.Close(ctx)
	}
}

const (
	armedInFlight = 1 << iota
	armedFired
	armedShift = iota
)

// arm starts the CPU budget of one guest entry (which may span several
// calls: wasmesh_input then wasmesh_process). It reads no clock: the
// watchdog bounds the start by its epoch. Each atomic store costs a full
// barrier, so the epoch and the context deadline are stored only when they
// changed (the epoch moves once per watchdog tick).
func (in *instance) arm(ctx context.Context) {
	w := in.rt.watchdog
	var cdl int64
	if t, ok := ctx.Deadline(); ok {
		cdl = max(in.rt.monoOf(t), 1) // 0 means none
	}
	in.failMsg = ""
	in.logLines = 0
	if in.ctxDeadline.Load() != cdl {
		in.ctxDeadline.Store(cdl)
	}
	if e := w.epoch.Load(); in.armEpoch.Load() != e {
		in.armEpoch.Store(e)
	}
	in.callNo++
	in.armed.Store(in.callNo<<armedShift | armedInFlight)
	w.kick()
}

// disarm ends the budget and reports whether the watchdog fired.
func (in *instance) disarm() bool {
	if in.armed.Swap(in.callNo<<armedShift)&armedFired == 0 {
		return false
	}
	// The watchdog set the bit and the flag under stopMu: once we hold it,
	// the flag is set and can be cleared for good.
	in.stopMu.Lock()
	in.stopFlag.Set(0)
	in.stopMu.Unlock()
	return true
}

// stopping reports whether the watchdog preempted the call in flight.
func (in *instance) stopping() bool { return in.armed.Load()&armedFired != 0 }

// invoke calls fn in phase p; the budget must be armed.
func (in *instance) invoke(fn api.Function, p phase) error {
	in.phase = p
	err := fn.CallWithStack(in.callCtx, in.stack[:])
	in.phase = phaseIdle
	return err
}

// call arms the budget around one guest call and classifies its failure
// as one of the Err* event kinds.
func (in *instance) call(ctx context.Context, fn api.Function, p phase) error {
	in.arm(ctx)
	err := in.invoke(fn, p)
	return in.settle(err, in.disarm())
}

func (in *instance) settle(err error, preempted bool) error {
	if err == nil {
		return nil
	}
	var ce *callError
	if errors.As(err, &ce) {
		return ce
	}
	return in.classify(err, preempted)
}

func (in *instance) classify(err error, preempted bool) error {
	var ab *guestAbort
	if errors.As(err, &ab) {
		return &callError{cause: ab.cause, detail: ab.detail}
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return &callError{cause: ErrGuestExit, detail: fmt.Sprintf("exit code %d", exit.ExitCode())}
	}
	if preempted {
		return &callError{cause: ErrEventTimeout, detail: fmt.Sprintf("budget %s", in.d.limits.EventTimeout)}
	}
	return &callError{cause: ErrGuestTrap, detail: trapText(err)}
}

// callError is an instance-level failure before it is attached to an event.
type callError struct {
	cause  error
	detail string
}

func (e *callError) Error() string { return e.cause.Error() + ": " + e.detail }
func (e *callError) Unwrap() error { return e.cause }

func trapText(err error) string {
	s := firstLine(err.Error())
	return strings.TrimPrefix(s, "wasm error: ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// initialize runs _initialize (reactors) if exported.
func (in *instance) initialize(ctx context.Context) error {
	if in.fnInitialize == nil {
		return nil
	}
	return in.call(ctx, in.fnInitialize, phaseIdle)
}

// writeInput asks the guest for a buffer of n bytes and copies data into
// it; the budget must be armed.
func (in *instance) writeInput(data []byte) (uint32, error) {
	in.stack[0] = api.EncodeI32(int32(len(data)))
	if err := in.invoke(in.fnInput, phaseIdle); err != nil {
		return 0, err
	}
	ptr := api.DecodeU32(in.stack[0])
	if !in.mem.Write(ptr, data) {
		return 0, &callError{cause: ErrBadPointer, detail: fmt.Sprintf("wasmesh_input returned %d for %d bytes; memory is %d bytes", ptr, len(data), in.mem.Size())}
	}
	return ptr, nil
}

// withInput runs export(ptr, len) on data copied into the guest, under one
// budget, and turns a non-zero result into ErrGuestError.
func (in *instance) withInput(ctx context.Context, data []byte, fn api.Function, p phase, head func(ptr uint32) int) error {
	in.arm(ctx)
	ptr, err := in.writeInput(data)
	if err == nil {
		n := head(ptr)
		in.stack[n] = api.EncodeU32(ptr)
		in.stack[n+1] = api.EncodeI32(int32(len(data)))
		err = in.invoke(fn, p)
	}
	if err = in.settle(err, in.disarm()); err != nil {
		return err
	}
	if rc := api.DecodeI32(in.stack[0]); rc != 0 {
		msg := in.failMsg
		if msg == "" {
			msg = fmt.Sprintf("returned %d", rc)
		}
		return &callError{cause: ErrGuestError, detail: msg}
	}
	return nil
}

// process delivers one event; outputs land in in.out.
func (in *instance) process(ctx context.Context, ev *Event) error {
	return in.withInput(ctx, ev.Payload, in.fnProcess, phaseProcess, func(uint32) int {
		in.stack[0] = ev.Sender
		in.stack[1] = ev.Seq
		return 2
	})
}

func noHead(uint32) int { return 0 }

// runInit calls wasmesh_init(config) if exported.
func (in *instance) runInit(ctx context.Context, config []byte) error {
	if in.fnInit == nil {
		return nil
	}
	return in.withInput(ctx, config, in.fnInit, phaseInit, noHead)
}

// coopSnapshot calls wasmesh_snapshot and returns what the guest wrote.
func (in *instance) coopSnapshot(ctx context.Context) ([]byte, error) {
	in.state = in.state[:0]
	if err := in.call(ctx, in.fnSnapshot, phaseSnapshot); err != nil {
		return nil, err
	}
	if rc := api.DecodeI32(in.stack[0]); rc != 0 {
		return nil, &callError{cause: ErrGuestError, detail: fmt.Sprintf("wasmesh_snapshot returned %d: %s", rc, in.failMsg)}
	}
	return append([]byte(nil), in.state...), nil
}

// coopRestore hands state to wasmesh_restore.
func (in *instance) coopRestore(ctx context.Context, state []byte) error {
	return in.withInput(ctx, state, in.fnRestore, phaseRestore, noHead)
}

// preempt is called by the watchdog for a call whose deadline passed.
// call is the armed word the watchdog saw; the call is preempted only if
// it is still that one.
func (in *instance) preempt(call uint64) {
	if call&(armedInFlight|armedFired) != armedInFlight {
		return // not in flight, or already preempted
	}
	in.stopMu.Lock()
	if in.armed.CompareAndSwap(call, call|armedFired) {
		in.stopFlag.Set(1)
	}
	in.stopMu.Unlock()
}

func (in *instance) tablesMutated() bool {
	return in.tablesDirty != nil && in.tablesDirty.Get() != 0
}
