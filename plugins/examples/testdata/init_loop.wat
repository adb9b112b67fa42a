;; init_loop: wasmesh_init spins in (loop br 0) forever. For the CPU budget
;; of wasmesh_init at spawn.
(module
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_init") (param $ptr i32) (param $len i32) (result i32)
    (loop $spin (br $spin))
    (i32.const 0))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (i32.const 0)))
