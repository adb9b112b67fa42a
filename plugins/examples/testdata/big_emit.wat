;; big_emit: emits one output of n bytes, all 'a' (0x61), where n is the
;; first 4 bytes of the payload, little-endian. Memory grows to fit n (fails
;; the event if it cannot). For output size limits and large copies. A
;; payload shorter than 4 bytes fails with "need 4 bytes". The output is
;; built at 64, past the messages, which an earlier fill must not clobber.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "need 4 bytescannot grow")
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (local $pages i32)
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then
        (call $fail (i32.const 0) (i32.const 12))
        (return (i32.const 1))))
    (local.set $n (i32.load (local.get $ptr)))
    (local.set $pages
      (i32.wrap_i64 (i64.shr_u
        (i64.add (i64.extend_i32_u (local.get $n)) (i64.const 65599)) ;; 64 + 65535
        (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then
            (call $fail (i32.const 12) (i32.const 11))
            (return (i32.const 1))))))
    (memory.fill (i32.const 64) (i32.const 0x61) (local.get $n))
    (call $emit (i32.const 64) (local.get $n))
    (i32.const 0)))
