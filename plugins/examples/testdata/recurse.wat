;; recurse: wasmesh_process calls f(60), and f(n) calls f(n-1) twice: 2^61
;; calls with depth at most 61 and no loop anywhere, so only a check at
;; function entry (or a timer) can stop it; the stack never overflows.
(module
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func $f (param $n i32)
    (if (i32.gt_u (local.get $n) (i32.const 0))
      (then
        (call $f (i32.sub (local.get $n) (i32.const 1)))
        (call $f (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (call $f (i32.const 60))
    (i32.const 0)))
