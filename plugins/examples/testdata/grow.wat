;; grow: wasmesh_process grows memory one page at a time until memory.grow
;; fails (-1), then emits the final memory.size in pages as decimal text.
;; Memory has no declared maximum: the host's memory limit is what stops it.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  ;; Writes $v in decimal so that it ends at offset $end; returns its start.
  (func $utoa (param $v i64) (param $end i32) (result i32)
    (loop $digit
      (local.set $end (i32.sub (local.get $end) (i32.const 1)))
      (i64.store8 (local.get $end) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (local.get $end))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $p i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (call $emit
      (local.tee $p (call $utoa (i64.extend_i32_u (memory.size)) (i32.const 32)))
      (i32.sub (i32.const 32) (local.get $p)))
    (i32.const 0)))
