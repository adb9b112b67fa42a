;; hidden_global: state lives only in two NON-exported mutable globals, an
;; i32 event count and an f64 that grows by 0.25 per event. Every event but
;; "get" updates both; every event emits "<i32> <f64 with 2 decimals>":
;; "1 0.25", "2 0.50", "3 0.75", "4 1.00", ... Checks that a transparent
;; snapshot carries globals of more than one type, bit for bit.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (global $x (mut f64) (f64.const 0))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  ;; payload == "get"
  (func $is_get (param $ptr i32) (param $len i32) (result i32)
    (if (result i32) (i32.ne (local.get $len) (i32.const 3))
      (then (i32.const 0))
      (else
        (i32.and
          (i32.eq (i32.load16_u (local.get $ptr)) (i32.const 0x6567))
          (i32.eq (i32.load8_u offset=2 (local.get $ptr)) (i32.const 0x74))))))
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
    (local $cents i64)
    (if (i32.eqz (call $is_get (local.get $ptr) (local.get $len)))
      (then
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (global.set $x (f64.add (global.get $x) (f64.const 0.25)))))
    ;; Built right to left, ending at 64: n, ' ', int(x), '.', two digits.
    (local.set $cents (i64.trunc_f64_u (f64.mul (global.get $x) (f64.const 100))))
    (local.set $p (i32.const 62))
    (i64.store8 offset=1 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $cents) (i64.const 10))))
    (i64.store8 (local.get $p)
      (i64.add (i64.const 48) (i64.rem_u (i64.div_u (local.get $cents) (i64.const 10)) (i64.const 10))))
    (local.set $p (i32.sub (local.get $p) (i32.const 1)))
    (i32.store8 (local.get $p) (i32.const 46)) ;; '.'
    (local.set $p (call $utoa (i64.div_u (local.get $cents) (i64.const 100)) (local.get $p)))
    (local.set $p (i32.sub (local.get $p) (i32.const 1)))
    (i32.store8 (local.get $p) (i32.const 32)) ;; ' '
    (local.set $p (call $utoa (i64.extend_i32_u (global.get $n)) (local.get $p)))
    (call $emit (local.get $p) (i32.sub (i32.const 64) (local.get $p)))
    (i32.const 0)))
