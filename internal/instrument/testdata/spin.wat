;; Runaway guests for preemption tests and a loop for the overhead benchmark.
(module
  (type $t (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $tree)
  (memory (export "memory") 1)
  ;; An infinite loop.
  (func (export "spin")
    (loop $l (br $l)))
  ;; A call tree of 2^n calls with no loop anywhere: only function-entry
  ;; checks can stop it.
  (func $tree (export "tree") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 1))
      (else
        (i32.add
          (call $tree (i32.sub (local.get $n) (i32.const 1)))
          (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))))))
  ;; Endless tail recursion: no loop, no stack growth.
  (func $tail (export "tail") (param $n i32) (result i32)
    (return_call $tail (i32.add (local.get $n) (i32.const 1))))
  ;; Sum 0..n-1 in a loop.
  (func (export "sum") (param $n i64) (result i64) (local $i i64) (local $s i64)
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i64.add (local.get $s) (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $s))
;; FNV-1a over n bytes of memory (wrapping in the first 64 KiB): a loop
  ;; whose body does real work (a load and a multiply on the critical path).
  (func (export "fnv") (param $n i32) (result i32) (local $i i32) (local $h i32)
    (local.set $h (i32.const 0x811c9dc5))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h
          (i32.mul
            (i32.xor (local.get $h) (i32.load8_u (i32.and (local.get $i) (i32.const 0xffff))))
            (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $h))
)
