;; A guest that changes its table at run time.
(module
  (memory (export "memory") 1)
  (table $t 2 4 funcref)
  (elem $p funcref (ref.func $f))
  (func $f (result i32) (i32.const 5))
  (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
  (func (export "set") (table.set $t (i32.const 1) (ref.func $f)))
  (func (export "grow") (result i32) (table.grow $t (ref.null func) (i32.const 1)))
  (func (export "init") (table.init $t $p (i32.const 0) (i32.const 0) (i32.const 1)))
  (func (export "drop") (elem.drop $p))
  (func (export "read") (result i32) (table.size $t))
)
