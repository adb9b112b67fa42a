;; counter-wat: every event adds one to a count and emits it as decimal text
;; ("1", "2", ...); the payload "get" emits the count without adding.
;;
;; The count lives only in a NON-exported mutable global: the host must
;; capture it by instrumenting the module (re-exporting mutable globals)
;; for a transparent snapshot to carry it. Memory holds nothing that
;; matters between events.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i64) (i64.const 0))

  (func (export "wasmesh_abi_v1"))

  ;; Input at 1024, memory grown to fit (see echo-wat.wat).
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64 (i64.shr_u
        (i64.add (i64.extend_i32_u (local.get $len)) (i64.const 66559))
        (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (i32.const 1024))

  ;; payload == "get"
  (func $is_get (param $ptr i32) (param $len i32) (result i32)
    (if (result i32) (i32.ne (local.get $len) (i32.const 3))
      (then (i32.const 0))
      (else
        (i32.and
          (i32.eq (i32.load16_u (local.get $ptr)) (i32.const 0x6567)) ;; "ge"
          (i32.eq (i32.load8_u offset=2 (local.get $ptr)) (i32.const 0x74)))))) ;; "t"

  ;; Writes $v in decimal so that it ends at offset 32; returns its start.
  (func $utoa (param $v i64) (result i32)
    (local $p i32)
    (local.set $p (i32.const 32))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (local.get $p))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $p i32)
    (if (i32.eqz (call $is_get (local.get $ptr) (local.get $len)))
      (then (global.set $count (i64.add (global.get $count) (i64.const 1)))))
    (call $emit
      (local.tee $p (call $utoa (global.get $count)))
      (i32.sub (i32.const 32) (local.get $p)))
    (i32.const 0)))
