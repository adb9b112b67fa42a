// Package abi is the guest ABI v1 contract between wasmesh and the
// WebAssembly modules it runs: export and import names, their signatures,
// the limits the host enforces, the origin-hash derivation, and the module
// validator that says why a module is refused.
//
// abi imports nothing from the host or the transport: guest SDKs, tools and
// the host all build against this one package.
package abi

import "github.com/wasmesh/wasmesh/internal/wasmbin"

// Version is the ABI version this package describes.
const Version = 1

// ImportModule is the module name of every host function in ABI v1.
const ImportModule = "wasmesh"

// Guest exports.
const (
	ExportMemory     = "memory"
	ExportMarker     = "wasmesh_abi_v1"
	ExportInput      = "wasmesh_input"
	ExportProcess    = "wasmesh_process"
	ExportInit       = "wasmesh_init"
	ExportSnapshot   = "wasmesh_snapshot"
	ExportRestore    = "wasmesh_restore"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"
)

// Host imports (module "wasmesh").
const (
	ImportEmit       = "emit"
	ImportFail       = "fail"
	ImportLog        = "log"
	ImportStateWrite = "state_write"
	ImportNow        = "now"
	ImportRandom     = "random"
	ImportSelf       = "self"
	// ImportPublish is publish(ch_ptr, ch_len, ptr, len) -> i32: a message
	// to a channel, published after the event commits (see README.md).
	ImportPublish = "publish"
	// ImportSend is send(target_ptr, ptr, len) -> i32: a message to
	// another daemon, delivered after the event commits (see README.md).
	ImportSend = "send"
)

// Results of the send import.
const (
	// SendQueued: the message is queued; it is delivered exactly once,
	// as an event with the sender's origin and outbound sequence.
	SendQueued = 0
	// SendTooLarge: the payload is over the host's per-message cap.
	SendTooLarge = 1
	// SendFull: the sender's outbox is full; retry in a later event.
	SendFull = 2
)

// Results of the publish import. A publish shares the outbox (its bounds
// and the outbound sequence) with send, so the first three match send's.
const (
	// PublishQueued: the message is queued; it reaches the channel's home
	// exactly once, in order with the daemon's other publishes there.
	PublishQueued = 0
	// PublishTooLarge: the payload is over the host's per-message cap.
	PublishTooLarge = 1
	// PublishFull: the daemon's outbox is full; retry in a later event.
	PublishFull = 2
	// PublishBadChannel: the channel name is not a valid one (empty, over
	// 255 bytes, or not '/'-separated segments of [a-z0-9._-]).
	PublishBadChannel = 3
	// PublishTooManyChannels: the daemon already published to the most
	// distinct channels the host keeps an order for (256).
	PublishTooManyChannels = 4
)

// ReservedExportPrefix starts every export name the host adds when it derives
// an instrumented module (exported mutable globals, the preemption flag).
// A guest must not export names with this prefix.
const ReservedExportPrefix = "__wasmesh_"

// Log levels accepted by the log import.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// LogLevelName names a log level ("debug", "info", "warn", "error");
// unknown levels read as info, as the host treats them.
func LogLevelName(level int) string {
	switch level {
	case LogDebug:
		return "debug"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return "info"
}

// ValType is a core wasm value type, as its binary encoding; defined once,
// by the parser.
type ValType = wasmbin.ValType

// Core wasm value types.
const (
	I32       = wasmbin.I32
	I64       = wasmbin.I64
	F32       = wasmbin.F32
	F64       = wasmbin.F64
	V128      = wasmbin.V128
	FuncRef   = wasmbin.FuncRef
	ExternRef = wasmbin.ExternRef
)

// Signature is a function type.
type Signature struct {
	Params  []ValType
	Results []ValType
}

// String renders the signature as "(i32, i64) -> i32".
func (s Signature) String() string {
	out := "("
	for i, p := range s.Params {
		if i > 0 {
			out += ", "
		}
		out += p.String()
	}
	out += ") -> "
	switch len(s.Results) {
	case 0:
		out += "()"
	case 1:
		out += s.Results[0].String()
	default:
		out += "("
		for i, r := range s.Results {
			if i > 0 {
				out += ", "
			}
			out += r.String()
		}
		out += ")"
	}
	return out
}

// Equal reports whether two signatures are identical.
func (s Signature) Equal(o Signature) bool {
	if len(s.Params) != len(o.Params) || len(s.Results) != len(o.Results) {
		return false
	}
	for i := range s.Params {
		if s.Params[i] != o.Params[i] {
			return false
		}
	}
	for i := range s.Results {
		if s.Results[i] != o.Results[i] {
			return false
		}
	}
	return true
}

func sig(params []ValType, results ...ValType) Signature {
	return Signature{Params: params, Results: results}
}

func vals(v ...ValType) []ValType { return v }

// ExportSignature returns the required signature of an ABI export, and false
// for names the ABI does not define.
func ExportSignature(name string) (Signature, bool) {
	switch name {
	case ExportMarker, ExportInitialize:
		return sig(nil), true
	case ExportInput:
		return sig(vals(I32), I32), true
	case ExportProcess:
		return sig(vals(I64, I64, I32, I32), I32), true
	case ExportInit, ExportRestore:
		return sig(vals(I32, I32), I32), true
	case ExportSnapshot:
		return sig(nil, I32), true
	}
	return Signature{}, false
}

// ImportSignature returns the signature of a host function in module
// "wasmesh", and false for names the host does not provide.
func ImportSignature(name string) (Signature, bool) {
	switch name {
	case ImportEmit, ImportFail, ImportStateWrite, ImportRandom:
		return sig(vals(I32, I32)), true
	case ImportLog:
		return sig(vals(I32, I32, I32)), true
	case ImportNow:
		return sig(nil, I64), true
	case ImportSelf:
		return sig(vals(I32)), true
	case ImportPublish:
		return sig(vals(I32, I32, I32, I32), I32), true
	case ImportSend:
		return sig(vals(I32, I32, I32), I32), true
	}
	return Signature{}, false
}

// WASIModule is the import module name of WASI preview 1.
const WASIModule = "wasi_snapshot_preview1"

// WASISignature returns the signature of an allowed WASI preview 1 function,
// and false for functions outside the allowed subset. The subset is what
// reactors built by mainstream toolchains import; everything touching files
// or sockets answers ENOSYS/EBADF at run time.
func WASISignature(name string) (Signature, bool) {
	switch name {
	case "args_get", "environ_get", "args_sizes_get", "environ_sizes_get":
		return sig(vals(I32, I32), I32), true
	case "clock_time_get":
		return sig(vals(I32, I64, I32), I32), true
	case "clock_res_get":
		return sig(vals(I32, I32), I32), true
	case "fd_write", "fd_read":
		return sig(vals(I32, I32, I32, I32), I32), true
	case "fd_close", "fd_sync", "fd_datasync":
		return sig(vals(I32), I32), true
	case "fd_fdstat_get", "fd_prestat_get", "fd_fdstat_set_flags":
		return sig(vals(I32, I32), I32), true
	case "fd_prestat_dir_name":
		return sig(vals(I32, I32, I32), I32), true
	case "fd_seek":
		return sig(vals(I32, I64, I32, I32), I32), true
	case "proc_exit":
		return sig(vals(I32)), true
	case "random_get":
		return sig(vals(I32, I32), I32), true
	case "sched_yield":
		return sig(nil, I32), true
	case "poll_oneoff":
		return sig(vals(I32, I32, I32, I32), I32), true
	}
	return Signature{}, false
}
