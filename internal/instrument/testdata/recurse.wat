;; Trivial recursive functions for the recursion-depth fidelity test: each
;; counts its depth in a global and recurses until the stack overflows.
(module
  (global $d (export "depth") (mut i32) (i32.const 0))
  ;; The smallest frame: no parameter, no result, no local.
  (func $bare (export "bare")
    (global.set $d (i32.add (global.get $d) (i32.const 1)))
    (call $bare))
  ;; A parameter live across the call and a result.
  (func $arg (export "arg") (param $n i32) (result i32)
    (global.set $d (i32.add (global.get $d) (i32.const 1)))
    (i32.add (call $arg (i32.add (local.get $n) (i32.const 1))) (local.get $n)))
  ;; The recursive call in one arm of an if (a countdown that never gets
  ;; to 0 before the stack overflows).
  (func $cond (export "cond") (param $n i32) (result i32)
    (global.set $d (i32.add (global.get $d) (i32.const 1)))
    (if (result i32) (local.get $n)
      (then (call $cond (i32.sub (local.get $n) (i32.const 1))))
      (else (i32.const 0))))
  ;; A loop before the recursive call: its yield point is a call in the
  ;; body, which costs stack slots (reported, not held to the goal).
  (func $loopy (export "loopy") (param $n i32) (result i32) (local $i i32)
    (global.set $d (i32.add (global.get $d) (i32.const 1)))
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (i32.add (call $loopy (i32.add (local.get $n) (local.get $i))) (local.get $n)))
)
