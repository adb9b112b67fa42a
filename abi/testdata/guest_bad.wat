;; Breaks ABI v1 in as many ways as one module can; the validator must list
;; every problem.
(module
  (import "env" "abort" (func (param i32 i32 i32 i32)))
  (import "wasmesh" "emit" (func (param i32)))
  (import "wasmesh" "teleport" (func))
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "env" "table" (table 1 funcref))
  (import "env" "g" (global i32))
  (memory 1)
  (memory 1)
  (func $f)
  (func $p (param i32 i32 i32 i32) (result i32) (i32.const 0))
  (export "memory" (func $f))
  (export "wasmesh_process" (func $p))
  (export "wasmesh_snapshot" (func $f))
  (export "_start" (func $f))
  (export "__wasmesh_g0" (func $f))
)
