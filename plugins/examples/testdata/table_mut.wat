;; table_mut: state lives in a funcref table. Each event calls table slot 0
;; and emits its result as one decimal digit, then table.set's slot 0 to $two.
;; A fresh instance answers "1" then "2", "2", ...; an instance restored
;; after one event must answer "2" (or the host must refuse the module).
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (type $ret (func (result i32)))
  (table $t 1 funcref)
  (elem (i32.const 0) $one)
  (elem declare func $two)
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then unreachable))
    (i32.const 1024))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 0)
      (i32.add (i32.const 48) (call_indirect (type $ret) (i32.const 0))))
    (call $emit (i32.const 0) (i32.const 1))
    (table.set $t (i32.const 0) (ref.func $two))
    (i32.const 0)))
