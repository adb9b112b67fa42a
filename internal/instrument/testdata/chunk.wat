;; chunk: memory.fill and memory.copy with every operand from parameters,
;; for the chunked helpers' equivalence and stop tests. Memory is 40 pages
;; (2.5 MiB, more than two chunks), growable.
(module
  (memory (export "memory") 40)
  (func (export "fill") (param i32 i32 i32)
    (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0)))
  ;; smallvar(n, len): n memory.copy of len bytes each, len not a constant
  ;; (so every one goes through the $copy helper).
  (func (export "smallvar") (param $n i32) (param $len i32) (result i32)
    (local $i i32)
    (loop $l
      (memory.copy
        (i32.and (i32.mul (local.get $i) (i32.const 16)) (i32.const 0xffff))
        (i32.const 65536) (local.get $len))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))
