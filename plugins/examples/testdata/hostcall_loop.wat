;; hostcall_loop: wasmesh_process never returns: a loop calling the `now`
;; host function forever. For the stop-flag check at host-call entry.
(module
  (import "wasmesh" "now" (func $now (result i64)))
  (memory (export "memory") 1)
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (loop $spin
      (drop (call $now))
      (br $spin))
    (i32.const 0)))
