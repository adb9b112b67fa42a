// Package coop switches a Go guest to cooperative snapshots. Import it for
// its side effect:
//
//	import _ "github.com/wasmesh/wasmesh/sdk-guest/go/coop"
//
// Wasm exports are fixed at build time, and ABI v1 makes a module
// cooperative exactly when it exports both wasmesh_snapshot and
// wasmesh_restore, so the choice is made by importing this package rather
// than by calling a function. Register the hooks with wasmesh.Snapshot and
// wasmesh.Restore; without them every snapshot fails, which the host reports
// instead of silently losing state.
package coop
