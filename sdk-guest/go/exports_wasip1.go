//go:build wasip1

package wasmesh

import "github.com/wasmesh/wasmesh/sdk-guest/go/internal/rt"

// The core ABI exports. Every guest that imports this package gets all of
// them; wasmesh_init answers 0 when no OnInit hook is registered, which the
// ABI treats the same as not exporting it.

//go:wasmexport wasmesh_abi_v1
func abiV1() {}

//go:wasmexport wasmesh_input
func input(n uint32) uint32 { return rt.Input(n) }

//go:wasmexport wasmesh_process
func process(origin, seq uint64, ptr, n uint32) int32 { return rt.Process(origin, seq, ptr, n) }

//go:wasmexport wasmesh_init
func initDaemon(ptr, n uint32) int32 { return rt.Init(ptr, n) }
