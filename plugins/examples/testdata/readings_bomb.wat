;; readings_bomb: payload "wasi" asks WASI random_get for 2 MiB; payload
;; "time" calls now() 200,000 times (1.6 MB of clock readings); any other
;; payload counts and emits the count as 8 bytes little-endian.
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasmesh" "now" (func $now (result i64)))
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 64)
  (global $count (mut i64) (i64.const 0))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    (if (i32.eq (local.get $len) (i32.const 4))
      (then
        (if (i32.eq (i32.load (i32.const 1024)) (i32.const 0x69736177)) ;; "wasi"
          (then (drop (call $random_get (i32.const 65536) (i32.const 0x200000))) (return (i32.const 0))))
        (if (i32.eq (i32.load (i32.const 1024)) (i32.const 0x656d6974)) ;; "time"
          (then
            (loop $more
              (drop (call $now))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $more (i32.lt_u (local.get $i) (i32.const 200000))))
            (return (i32.const 0))))))
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (i64.store (i32.const 16) (global.get $count))
    (call $emit (i32.const 16) (i32.const 8))
    (i32.const 0)))
