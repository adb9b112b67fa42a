;; pingpong-wat: two daemons bounce a counter between them with the send
;; import until it reaches a limit, so a test can count every message.
;;
;; Client events:
;;   "start <peer origin, 16 hex digits> <limit, decimal>"
;;       sends message 1 to the peer.
;;   "get"  emits four decimal outputs: messages received, messages sent,
;;          the last value received, and how many messages arrived out of
;;          order or twice (0 when delivery is exactly once and in order).
;; Daemon messages are 16 bytes: value u64, limit u64 (little-endian). On
;; one with value < limit the daemon replies to its sender with value+1.
;; A send the host does not queue fails the event, so the message that
;; caused it is rolled back and delivered again later.
;;
;; Everything that matters lives in mutable globals (transparent snapshots
;; carry them); memory holds only scratch.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "send" (func $send (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $received (mut i64) (i64.const 0))
  (global $sent (mut i64) (i64.const 0))
  (global $last (mut i64) (i64.const 0))
  (global $bad (mut i64) (i64.const 0))

  (func (export "wasmesh_abi_v1"))

  ;; Input at 1024, memory grown to fit.
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

  (func $emit_u64 (param $v i64)
    (local $p i32)
    (call $emit
      (local.tee $p (call $utoa (local.get $v)))
      (i32.sub (i32.const 32) (local.get $p))))

  ;; One hex digit; traps on anything else.
  (func $hex (param $c i32) (result i64)
    (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
      (then (return (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48))))))
    (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 102)))
      (then (return (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 87))))))
    unreachable)

  ;; Sends (value, limit) to target; the event fails unless it was queued.
  (func $send_msg (param $target i64) (param $v i64) (param $limit i64) (result i32)
    (i64.store (i32.const 64) (local.get $target))
    (i64.store (i32.const 80) (local.get $v))
    (i64.store (i32.const 88) (local.get $limit))
    (if (call $send (i32.const 64) (i32.const 80) (i32.const 16))
      (then (return (i32.const 1))))
    (global.set $sent (i64.add (global.get $sent) (i64.const 1)))
    (i32.const 0))

  (func $start (param $ptr i32) (param $len i32) (result i32)
    (local $i i32) (local $peer i64) (local $limit i64)
    ;; "start " + 16 hex + " " + at least one digit
    (if (i32.lt_u (local.get $len) (i32.const 24)) (then (return (i32.const 1))))
    (local.set $i (i32.const 6))
    (loop $h
      (local.set $peer (i64.or (i64.shl (local.get $peer) (i64.const 4))
        (call $hex (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $h (i32.lt_u (local.get $i) (i32.const 22))))
    (local.set $i (i32.const 23))
    (loop $d
      (local.set $limit (i64.add (i64.mul (local.get $limit) (i64.const 10))
        (i64.extend_i32_u (i32.sub (i32.load8_u (i32.add (local.get $ptr) (local.get $i))) (i32.const 48)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $d (i32.lt_u (local.get $i) (local.get $len))))
    (call $send_msg (local.get $peer) (i64.const 1) (local.get $limit)))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $v i64) (local $limit i64)
    ;; "get"
    (if (i32.and (i32.eq (local.get $len) (i32.const 3))
          (i32.and (i32.eq (i32.load16_u (local.get $ptr)) (i32.const 0x6567))
                   (i32.eq (i32.load8_u offset=2 (local.get $ptr)) (i32.const 0x74))))
      (then
        (call $emit_u64 (global.get $received))
        (call $emit_u64 (global.get $sent))
        (call $emit_u64 (global.get $last))
        (call $emit_u64 (global.get $bad))
        (return (i32.const 0))))
    ;; "start " (0x72617473 = "star", then "t ")
    (if (i32.and (i32.ge_u (local.get $len) (i32.const 6))
          (i32.and (i32.eq (i32.load (local.get $ptr)) (i32.const 0x72617473))
                   (i32.eq (i32.load16_u offset=4 (local.get $ptr)) (i32.const 0x2074))))
      (then (return (call $start (local.get $ptr) (local.get $len)))))
    ;; A daemon message: 16 bytes from a non-zero sender.
    (if (i32.or (i64.eqz (local.get $origin)) (i32.ne (local.get $len) (i32.const 16)))
      (then (return (i32.const 1))))
    (local.set $v (i64.load (local.get $ptr)))
    (local.set $limit (i64.load offset=8 (local.get $ptr)))
    ;; In order means exactly the value after the one this side saw last
    ;; (the peer's reply to our last message).
    (if (i32.and (i64.ne (global.get $last) (i64.const 0))
                 (i64.ne (local.get $v) (i64.add (global.get $last) (i64.const 2))))
      (then (global.set $bad (i64.add (global.get $bad) (i64.const 1)))))
    (global.set $last (local.get $v))
    (global.set $received (i64.add (global.get $received) (i64.const 1)))
    (if (i64.lt_u (local.get $v) (local.get $limit))
      (then (return (call $send_msg (local.get $origin) (i64.add (local.get $v) (i64.const 1)) (local.get $limit)))))
    (i32.const 0)))
