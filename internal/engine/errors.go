package engine

import (
	"errors"
	"fmt"
)

// Lifecycle and registry errors (SPEC R-L1..R-L6).
var (
	ErrNotReady                 = errors.New("host: runtime not ready")
	ErrShuttingDown             = errors.New("host: runtime shutting down")
	ErrDaemonNotFound           = errors.New("host: daemon not found")
	ErrDuplicateOrigin          = errors.New("host: a daemon with this origin hash already runs")
	ErrUnknownKind              = errors.New("host: unknown daemon kind")
	ErrModuleRefused            = errors.New("host: module refused")
	ErrSnapshotIdentityMismatch = errors.New("host: snapshot entity id does not match the identity")
	ErrSnapshotModuleMismatch   = errors.New("host: snapshot module digest does not match the kind")
	ErrSnapshotUnsupported      = errors.New("host: snapshot cannot capture this daemon's state")
	ErrNotGranted               = errors.New("host: import not granted to this daemon")
	ErrDaemonFailed             = errors.New("host: daemon failed and must be restored from a snapshot")
	ErrDaemonStopped            = errors.New("host: daemon stopped")
	ErrMemoryLimit              = errors.New("host: memory limit")
)

// Event failure kinds: the cause inside an *EventError. Test with errors.Is.
var (
	// ErrEventTimeout: the event used up its CPU budget and was preempted.
	ErrEventTimeout = errors.New("event exceeded its CPU budget")
	// ErrGuestTrap: the guest trapped (unreachable, out-of-bounds access,
	// stack overflow, division by zero, ...).
	ErrGuestTrap = errors.New("guest trapped")
	// ErrGuestError: wasmesh_process returned non-zero; the message is the
	// one the guest passed to fail, if any.
	ErrGuestError = errors.New("guest returned an error")
	// ErrBadPointer: the guest handed the host a pointer/length outside its memory.
	ErrBadPointer = errors.New("guest passed an out-of-bounds pointer")
	// ErrOutputLimit: outputs exceeded the per-event limits.
	ErrOutputLimit = errors.New("output limit exceeded")
	// ErrReadingsLimit: the event asked for more clock and random bytes than
	// the per-event cap (Limits.MaxReadingsBytes); each is journaled for
	// rollback and durability, so the cap bounds the journals.
	ErrReadingsLimit = errors.New("readings limit exceeded")
	// ErrInputTooLarge: the event payload is larger than the daemon accepts.
	ErrInputTooLarge = errors.New("input larger than the daemon's limit")
	// ErrWrongMoment: a host function was called where the ABI forbids it
	// (state_write outside wasmesh_snapshot, emit during snapshot, ...).
	ErrWrongMoment = errors.New("host function called at the wrong moment")
	// ErrGuestExit: the guest called WASI proc_exit.
	ErrGuestExit = errors.New("guest exited")
)

// EventError is the error of one failed event. The daemon is rolled back to
// its state before the event (RolledBack) unless rollback itself was
// impossible, in which case the daemon is marked failed (ErrDaemonFailed).
type EventError struct {
	Origin     uint64 // daemon
	InputSeq   uint64 // the daemon's input sequence the event would have had
	Cause      error  // one of the Err* event failure kinds
	Detail     string // guest message or trap description
	RolledBack bool
}

func (e *EventError) Error() string {
	msg := fmt.Sprintf("daemon %016x event %d: %v", e.Origin, e.InputSeq, e.Cause)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if !e.RolledBack {
		msg += " (daemon not rolled back: failed)"
	}
	return msg
}

func (e *EventError) Unwrap() error { return e.Cause }

// guestAbort is what a host function panics with to unwind the guest; wazero
// recovers it and returns it wrapped, so errors.As finds it again.
type guestAbort struct {
	cause  error
	detail string
}

func (a *guestAbort) Error() string { return a.cause.Error() + ": " + a.detail }
func (a *guestAbort) Unwrap() error { return a.cause }
