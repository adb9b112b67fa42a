;; entropy: every event folds the clock (now) and 8 random bytes into a
;; hidden i64 and emits it as 8 little-endian bytes; "get" emits it without
;; reading the clock or randomness. A replay that does not feed back the
;; recorded readings produces other outputs.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "now" (func $now (result i64)))
  (import "wasmesh" "random" (func $random (param i32 i32)))
  (memory (export "memory") 1)
  (global $acc (mut i64) (i64.const 0))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (if (i32.eqz
          (i32.and (i32.eq (local.get $len) (i32.const 3))
            (i32.and (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6567))
                     (i32.eq (i32.load8_u (i32.const 1026)) (i32.const 0x74)))))
      (then
        (call $random (i32.const 0) (i32.const 8))
        (global.set $acc
          (i64.add
            (i64.mul (global.get $acc) (i64.const 31))
            (i64.xor (call $now) (i64.load (i32.const 0)))))))
    (i64.store (i32.const 16) (global.get $acc))
    (call $emit (i32.const 16) (i32.const 8))
    (i32.const 0)))
