// Package rt is the machinery behind the wasmesh guest SDK: the registered
// hooks, the input buffer and the dispatch of each ABI export. The exported
// wasm functions live in the packages that an author imports (wasmesh for
// the core set, coop for the cooperative pair) and forward here, so both see
// the same hooks.
package rt

import (
	"bytes"
	"errors"
	"strconv"
	"unsafe"
)

// Handler processes one event; see wasmesh.Handle.
type Handler func(sender, seq uint64, payload []byte) ([][]byte, error)

var (
	handler  Handler
	onInit   func(config []byte) error
	snapshot func() ([]byte, error)
	restore  func(state []byte) error

	// in is the buffer wasmesh_input hands to the host. Keeping it in a
	// package variable is what keeps it alive: the host writes into it
	// between our calls, when no Go pointer to it would otherwise exist.
	in []byte
)

// minInput keeps the first buffer non-empty, so wasmesh_input never answers
// with a nil (zero) pointer even for a zero-length request.
const minInput = 256

// SetHandler, SetInit, SetSnapshot and SetRestore register the author's hooks.
func SetHandler(h Handler)                  { handler = h }
func SetInit(f func([]byte) error)          { onInit = f }
func SetSnapshot(f func() ([]byte, error))  { snapshot = f }
func SetRestore(f func(state []byte) error) { restore = f }

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// The SDK avoids fmt: it would add about 0.4 MB to every guest (and to its
// compile time on each node), for a handful of error messages.
func failMsg(msg string) int32 {
	fail(msg)
	return 1
}

func failErr(what string, err error) int32 { return failMsg(what + ": " + err.Error()) }

func failRange(what string, ptr, n uint32) int32 {
	return failMsg("wasmesh: " + what + " at " + strconv.FormatUint(uint64(ptr), 10) + "+" +
		strconv.FormatUint(uint64(n), 10) + " is outside the input buffer")
}

func missing(hook, export string) int32 {
	return failMsg("wasmesh: " + export + " called but no wasmesh." + hook + " hook is registered")
}

func recovered(r any) error {
	switch v := r.(type) {
	case error:
		return errors.New("panic: " + v.Error())
	case string:
		return errors.New("panic: " + v)
	case interface{ String() string }:
		return errors.New("panic: " + v.String())
	}
	return errors.New("panic with a value that is not an error or string")
}

// Input implements wasmesh_input. The buffer only grows: the ABI lets the
// host keep reusing it for any input up to the largest size it asked for,
// and growing geometrically keeps a stream of slowly rising sizes from
// reallocating on every event.
func Input(n uint32) uint32 {
	if in == nil || uint64(n) > uint64(cap(in)) {
		size := max(uint64(minInput), 2*uint64(cap(in)), uint64(n))
		in = make([]byte, size)
	}
	in = in[:cap(in)]
	return addr(in)
}

// view returns the part of the input buffer the host says it wrote. The host
// passes an address; checking it against our own buffer (in wrapping uint32
// arithmetic, like wasm's) means a bad pointer is an error of the call
// rather than a read of arbitrary memory.
func view(ptr, n uint32) ([]byte, bool) {
	if n == 0 {
		return []byte{}, true
	}
	off := ptr - addr(in)
	if uint64(off)+uint64(n) > uint64(len(in)) {
		return nil, false
	}
	// The capacity limit stops an append by the handler from writing over
	// the rest of the buffer.
	return in[off : off+n : off+n], true
}

// Process implements wasmesh_process.
func Process(sender, seq uint64, ptr, n uint32) int32 {
	payload, ok := view(ptr, n)
	if !ok {
		return failRange("payload", ptr, n)
	}
	if handler == nil {
		return failMsg("wasmesh: no handler: call wasmesh.Handle from an init function")
	}
	outs, err := callHandler(sender, seq, payload)
	if err != nil {
		fail(err.Error())
		return 1
	}
	for _, o := range outs {
		emit(o)
	}
	return 0
}

// callHandler turns a panic into an error: an unrecovered panic would end
// the Go runtime (proc_exit), killing the daemon instead of failing one event.
func callHandler(sender, seq uint64, payload []byte) (outs [][]byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, recovered(r)
		}
	}()
	return handler(sender, seq, payload)
}

// Init implements wasmesh_init. The config is copied because it is used
// once and authors tend to keep it; the hot path (Process) does not copy.
func Init(ptr, n uint32) int32 {
	config, ok := view(ptr, n)
	if !ok {
		return failRange("config", ptr, n)
	}
	if onInit == nil {
		return 0
	}
	if err := guard(func() error { return onInit(bytes.Clone(config)) }); err != nil {
		return failErr("init", err)
	}
	return 0
}

// Snapshot implements wasmesh_snapshot (exported only by importing coop).
func Snapshot() int32 {
	if snapshot == nil {
		return missing("Snapshot", "wasmesh_snapshot")
	}
	var state []byte
	err := guard(func() (err error) {
		state, err = snapshot()
		return err
	})
	if err != nil {
		return failErr("snapshot", err)
	}
	stateWrite(state)
	return 0
}

// Restore implements wasmesh_restore (exported only by importing coop).
func Restore(ptr, n uint32) int32 {
	state, ok := view(ptr, n)
	if !ok {
		return failRange("state", ptr, n)
	}
	if restore == nil {
		return missing("Restore", "wasmesh_restore")
	}
	if err := guard(func() error { return restore(bytes.Clone(state)) }); err != nil {
		return failErr("restore", err)
	}
	return 0
}

func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(r)
		}
	}()
	return f()
}

// Host functions, as the SDK's public API needs them.
func Emit(b []byte)               { emit(b) }
func Log(level int32, msg string) { logMsg(level, msg) }
func Now() int64                  { return now() }
func Random(b []byte)             { random(b) }
func Self() [32]byte              { return self() }

// Publish is the publish import's result: 0 queued, 1 too large, 2 outbox
// full, 3 bad channel name, 4 too many channels.
func Publish(channel string, b []byte) int32 { return publish(channel, b) }

// Send is the send import's result: 0 queued, 1 too large, 2 outbox full.
func Send(target uint64, b []byte) int32 { return send(target, b) }
