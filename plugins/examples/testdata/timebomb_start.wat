;; timebomb_start: counts and traps like trap, but its start function calls
;; now() and spins forever once the clock reads past 1e18 ns since the epoch
;; (2001-09-09). A host test spawns it on a clock before that time, then moves
;; the clock past it: the next trapping event's rollback re-instantiates the
;; module, and that start function loops. For the CPU budget of rollbacks.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "now" (func $now (result i64)))
  (func $start
    (if (i64.ge_s (call $now) (i64.const 1000000000000000000))
      (then (loop $spin (br $spin)))))
  (start $start)
  (memory (export "memory") 1)
  (global $count (mut i64) (i64.const 0))
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
    (if (i32.and
          (i32.eq (local.get $len) (i32.const 4))
          (i32.eq (i32.load (local.get $ptr)) (i32.const 0x70617274))) ;; "trap"
      (then unreachable))
    (if (i32.eqz (call $is_get (local.get $ptr) (local.get $len)))
      (then (global.set $count (i64.add (global.get $count) (i64.const 1)))))
    (call $emit
      (local.tee $p (call $utoa (global.get $count) (i32.const 32)))
      (i32.sub (i32.const 32) (local.get $p)))
    (i32.const 0)))
