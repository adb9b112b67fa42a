;; table_bomb: every event grows its funcref table by 64M entries (512 MiB
;; of host memory at 8 bytes an entry) and emits table.grow's result as 4
;; bytes little-endian: -1 (0xffffffff) once the host's table cap refuses it.
;; The table declares no maximum: the host's cap is what stops it.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 0x4000000)))
    (call $emit (i32.const 0) (i32.const 4))
    (i32.const 0)))
