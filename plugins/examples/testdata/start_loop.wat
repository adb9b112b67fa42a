;; start_loop: the start function spins in (loop br 0) forever; the rest
;; counts like counter-wat but is never reached. For the CPU budget of
;; instantiation (the start section runs before any event).
(module
  (memory (export "memory") 1)
  (func $start (loop $spin (br $spin)))
  (start $start)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (i32.const 0)))
