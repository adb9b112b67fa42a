;; REFUSED: wasmesh_process is (i32, i32) -> i32 instead of (i64, i64, i32, i32) -> i32.
(module
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process") (param i32 i32) (result i32)
    (i32.const 0))
)
