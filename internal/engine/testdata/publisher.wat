;; publisher: a test guest for the publish import (engine tests only).
;; Built with `wat2wasm publisher.wat -o publisher.wasm` (wabt 1.0.32).
;; An event's payload is
;;   fail u8, then records { ch_len u16 LE, size u32 LE, channel[ch_len] }
;; and makes the guest publish, per record, `size` bytes to `channel`
;; (message i starts with i as a u32; the rest is whatever memory holds),
;; emit one output holding every publish's result code as a byte, and then
;; fail the event when `fail` is non-zero.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 64)

  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32) (i32.const 1024))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $n i32) (local $chlen i32)
    (if (i32.eqz (local.get $len)) (then (return (i32.const 2))))
    (local.set $p (i32.add (local.get $ptr) (i32.const 1)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $chlen (i32.load16_u (local.get $p)))
        (i32.store (i32.const 0x100000) (local.get $n))
        (i32.store8 (i32.add (i32.const 0x300000) (local.get $n))
          (call $publish
            (i32.add (local.get $p) (i32.const 6)) (local.get $chlen)
            (i32.const 0x100000) (i32.load offset=2 (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.add (i32.const 6) (local.get $chlen))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (call $emit (i32.const 0x300000) (local.get $n))
    (i32.load8_u (local.get $ptr))))
