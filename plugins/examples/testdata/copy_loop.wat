;; copy_loop: wasmesh_process never returns: a loop whose body is one
;; memory.copy of 32 MiB (upper half onto lower), which does a lot of work per loop iteration. For the budget of
;; bulk memory instructions (each must count in proportion to its size).
(module
  (memory (export "memory") 1025 2048)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (loop $spin
      (memory.copy (i32.const 0) (i32.const 33554432) (i32.const 33554432))
      (br $spin))
    (i32.const 0)))
