;; wasi_loop: wasmesh_process never returns: a loop of WASI calls, chosen by
;; the payload's first byte: `w` fd_write of "x\n" to stdout, `b` fd_write of
;; 64 MiB with no newline to stdout, `c` clock_time_get, `r` random_get of 8
;; bytes, `p` poll_oneoff sleeping 10 s on a clock, `y` sched_yield; any
;; other payload (`go`) makes each iteration do all of them but `b`.
;; For stop checks in WASI calls (issue 10). Memory is 1025 pages, the
;; last 1024 of them the 64 MiB write buffer.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield"
    (func $sched_yield (result i32)))
  (memory (export "memory") 1025)
  (data (i32.const 16) "x\n")
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func $write
    ;; one iovec at 0: {buf 16, len 2}; bytes written go to 8
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $big
    ;; one iovec at 32: {buf 65536, len 64 MiB}
    (i32.store (i32.const 32) (i32.const 65536))
    (i32.store (i32.const 36) (i32.const 67108864))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 8))))
  (func $clock
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 40))))
  (func $random
    (drop (call $random_get (i32.const 48) (i32.const 8))))
  (func $poll
    ;; one clock subscription at 128 (48 bytes): userdata 0, tag 0 (clock),
    ;; clock id 1 (monotonic), timeout 10 s relative, precision 0, flags 0;
    ;; the event goes to 192, the event count to 56.
    (i64.store (i32.const 128) (i64.const 0))
    (i32.store8 (i32.const 136) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 1))
    (i64.store (i32.const 152) (i64.const 10000000000))
    (i64.store (i32.const 160) (i64.const 0))
    (i32.store16 (i32.const 168) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 128) (i32.const 192) (i32.const 1) (i32.const 56))))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $op i32)
    (if (local.get $len) (then (local.set $op (i32.load8_u (local.get $ptr)))))
    (loop $spin
      (block $done
        (block $all
          (br_if $all (i32.eqz (local.get $op)))
          (if (i32.eq (local.get $op) (i32.const 119)) (then (call $write) (br $done)))   ;; w
          (if (i32.eq (local.get $op) (i32.const 98)) (then (call $big) (br $done)))      ;; b
          (if (i32.eq (local.get $op) (i32.const 99)) (then (call $clock) (br $done)))    ;; c
          (if (i32.eq (local.get $op) (i32.const 114)) (then (call $random) (br $done)))  ;; r
          (if (i32.eq (local.get $op) (i32.const 112)) (then (call $poll) (br $done)))    ;; p
          (if (i32.eq (local.get $op) (i32.const 121))
            (then (drop (call $sched_yield)) (br $done)))                                ;; y
        )
        (call $write) (call $clock) (call $random) (call $poll) (drop (call $sched_yield)))
      (br $spin))
    (i32.const 0)))
