//go:build wasip1

// Command goguest is a tiny ABI v1 daemon built as a Go wasip1 reactor. It is
// test data for the wasm parser, the ABI validator and the instrumenter: Go's
// wasm output has many mutable globals, loops and a large code section.
//
// Build (from this folder):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -ldflags="-s -w" -trimpath -o ../go_reactor.wasm .
package main

import "unsafe"

//go:wasmimport wasmesh emit
func emit(ptr unsafe.Pointer, n uint32)

var (
	input []byte
	count uint64
	sum   uint64
	out   [16]byte
)

//go:wasmexport wasmesh_abi_v1
func abiV1() {}

//go:wasmexport wasmesh_input
func wasmeshInput(n uint32) unsafe.Pointer {
	if uint32(cap(input)) < n {
		input = make([]byte, n)
	}
	input = input[:n]
	if n == 0 {
		return nil
	}
	return unsafe.Pointer(&input[0])
}

//go:wasmexport wasmesh_process
func wasmeshProcess(origin, seq int64, ptr unsafe.Pointer, n uint32) int32 {
	count++
	for _, b := range input[:n] {
		sum += uint64(b)
	}
	for i := 0; i < 8; i++ {
		out[i] = byte(count >> (8 * i))
		out[8+i] = byte(sum >> (8 * i))
	}
	emit(unsafe.Pointer(&out[0]), uint32(len(out)))
	return 0
}

func main() {}
