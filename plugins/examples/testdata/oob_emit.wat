;; oob_emit: emit with a pointer beyond memory. By default emit(ptr =
;; memory size in bytes, len 1), the first byte past the end. With the
;; payload "wrap": emit(0xFFFFFFF0, 32), whose end wraps around 2^32 to 16,
;; which a bounds check done in 32-bit arithmetic would wrongly accept.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (if (i32.and
          (i32.eq (local.get $len) (i32.const 4))
          (i32.eq (i32.load (local.get $ptr)) (i32.const 0x70617277))) ;; "wrap"
      (then (call $emit (i32.const 0xFFFFFFF0) (i32.const 32)))
      (else (call $emit (i32.shl (memory.size) (i32.const 16)) (i32.const 1))))
    (i32.const 0)))
