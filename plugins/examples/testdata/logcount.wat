;; logcount: counts like counter-wat (every event adds one, "get" reads) and
;; logs "event <count>" at info level for every event, through the log
;; import; emits the count. For logs and counters that travel with a daemon.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i64) (i64.const 0))
  (data (i32.const 64) "event ")

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
    (local $p i32) (local $n i32)
    (if (i32.eqz (call $is_get (local.get $ptr) (local.get $len)))
      (then (global.set $count (i64.add (global.get $count) (i64.const 1)))))
    (local.set $p (call $utoa (global.get $count)))
    (local.set $n (i32.sub (i32.const 32) (local.get $p)))
    ;; "event " at 64, then the digits right after it
    (memory.copy (i32.const 70) (local.get $p) (local.get $n))
    (call $log (i32.const 1) (i32.const 64) (i32.add (i32.const 6) (local.get $n)))
    (call $emit (local.get $p) (local.get $n))
    (i32.const 0)))
