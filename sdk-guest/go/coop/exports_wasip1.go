//go:build wasip1

package coop

import "github.com/wasmesh/wasmesh/sdk-guest/go/internal/rt"

//go:wasmexport wasmesh_snapshot
func snapshot() int32 { return rt.Snapshot() }

//go:wasmexport wasmesh_restore
func restore(ptr, n uint32) int32 { return rt.Restore(ptr, n) }
