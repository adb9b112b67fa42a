;; logesc: a hostile logger. Every event logs one line holding terminal
;; control bytes (ESC [2J clear screen, ESC [31m red, BEL, a C1 CSI and an
;; RTL override) at info level, and emits "ok". For the CLI's escaping of
;; guest log lines (wasmesh logs must never print them raw).
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (import "wasmesh" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; "x\1b[2J\1b[31mred\07\c2\9b\e2\80\aeevil" is 23 bytes
  (data (i32.const 64) "x\1b[2J\1b[31mred\07\c2\9b\e2\80\aeevil")
  (data (i32.const 128) "ok")

  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 1) (i32.const 64) (i32.const 23))
    (call $emit (i32.const 128) (i32.const 2))
    (i32.const 0)))
