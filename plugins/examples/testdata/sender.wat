;; sender: a test guest for the send import. An event's payload is
;;   count u32, fail u8, target u64, size u32   (17 bytes, little-endian)
;; and makes the guest send `count` messages of `size` bytes to `target`
;; (message i starts with i as a u32; the rest is whatever memory holds),
;; emit one output holding every send's result code as a byte, and then
;; fail the event when `fail` is non-zero.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "send" (func $send (param i32 i32 i32) (result i32)))
  (memory (export "memory") 64)

  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32) (i32.const 1024))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $count i32) (local $fail i32) (local $size i32) (local $i i32)
    (if (i32.ne (local.get $len) (i32.const 17)) (then (return (i32.const 2))))
    (local.set $count (i32.load (local.get $ptr)))
    (local.set $fail (i32.load8_u offset=4 (local.get $ptr)))
    ;; the target stays in the input, at ptr+5
    (local.set $size (i32.load offset=13 (local.get $ptr)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store (i32.const 2048) (local.get $i))
        (i32.store8 (i32.add (i32.const 0x300000) (local.get $i))
          (call $send (i32.add (local.get $ptr) (i32.const 5)) (i32.const 2048) (local.get $size)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $emit (i32.const 0x300000) (local.get $count))
    (local.get $fail)))
