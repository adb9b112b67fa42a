//go:build wasip1

package rt

import "unsafe"

// The linker keeps only the imports a guest reaches, so a guest that never
// logs does not import log: the ABI lets a guest import any subset.

//go:wasmimport wasmesh emit
func hostEmit(ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmesh fail
func hostFail(msg string)

//go:wasmimport wasmesh log
func hostLog(level int32, msg string)

//go:wasmimport wasmesh state_write
func hostStateWrite(ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmesh now
func hostNow() int64

//go:wasmimport wasmesh random
func hostRandom(ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmesh self
func hostSelf(id *[32]byte)

//go:wasmimport wasmesh publish
func hostPublish(channel string, ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmesh send
func hostSend(target *uint64, ptr unsafe.Pointer, n uint32) int32

// Passing unsafe.Pointer (not a uintptr) keeps each buffer alive for the
// duration of the host call.
func emit(b []byte)            { hostEmit(unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))) }
func fail(msg string)          { hostFail(msg) }
func logMsg(l int32, m string) { hostLog(l, m) }
func stateWrite(b []byte)      { hostStateWrite(unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))) }
func now() int64               { return hostNow() }
func random(b []byte)          { hostRandom(unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))) }

func self() (id [32]byte) {
	hostSelf(&id)
	return id
}

func publish(channel string, b []byte) int32 {
	return hostPublish(channel, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
}

// send passes the target as a pointer to a u64: wasm memory is
// little-endian, which is the byte order the host reads the origin in.
func send(target uint64, b []byte) int32 {
	return hostSend(&target, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
}
