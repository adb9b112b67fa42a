;; random_bomb: payload "bomb" grows memory by 1024 pages (64 MiB; traps if it
;; cannot) and calls random(0, 64 MiB) twenty times; any other payload counts
;; and emits the count as 8 bytes little-endian, like entropy's output.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "random" (func $random (param i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i64) (i64.const 0))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    (if (i32.and (i32.eq (local.get $len) (i32.const 4))
                 (i32.eq (i32.load (i32.const 1024)) (i32.const 0x626d6f62)))
      (then
        (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)) (then unreachable))
        (loop $more
          (call $random (i32.const 0) (i32.const 0x4000000))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $more (i32.lt_u (local.get $i) (i32.const 20))))
        (return (i32.const 0))))
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (i64.store (i32.const 16) (global.get $count))
    (call $emit (i32.const 16) (i32.const 8))
    (i32.const 0)))
