;; Loops whose headers go without a check of their own (see "Loop headers
;; that need no check of their own" in loops.go), and one that must keep
;; its check. $n counts passes, so a test can bound how many run once the
;; stop flag is set. Built with wat2wasm.
(module
  (global $n (mut i32) (i32.const 0))
  (memory 1)
  ;; Three loops opened back to back, $k passes of the outermost (endless
  ;; for $k = 0): only $inner, run once per pass, counts.
  (func (export "nested") (param $k i32) (result i32)
    (loop $outer
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (loop $middle
        (block $b
          (loop $inner
            (local.set $k (i32.sub (local.get $k) (i32.const 1))))))
      (br_if $outer (local.get $k)))
    (global.get $n))
  ;; Tail recursion $k deep (endless for $k = 0) through a function that
  ;; opens with a loop run once per call: the entry leaves its test to it.
  (func $tailloop (export "tailloop") (param $k i32) (result i32)
    (loop $once
      (global.set $n (i32.add (global.get $n) (i32.const 1))))
    (if (i32.eq (local.get $k) (i32.const 1))
      (then (return (global.get $n))))
    (return_call $tailloop (i32.sub (local.get $k) (i32.const 1))))
  ;; $k passes (endless for $k = 0) of a loop whose header branches forward
  ;; and calls a checked function before every pass reaches the nested
  ;; loop: only $inner counts.
  (func (export "widened") (param $k i32) (result i32)
    (loop $outer
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (block $b
        (br_if $b (i32.eqz (i32.and (local.get $k) (i32.const 1))))
        (drop (call $checked (local.get $k))))
      (loop $inner
        (local.set $k (i32.sub (local.get $k) (i32.const 1))))
      (br_if $outer (local.get $k)))
    (global.get $n))
  ;; Exported, so checked.
  (func $checked (export "checked") (param $k i32) (result i32)
    (i32.add (local.get $k) (i32.const 1)))
  ;; An endless loop for $k != 0 whose header branches past the inner loop
  ;; before reaching it: $outer must keep its own check.
  (func (export "guarded") (param $k i32)
    (loop $outer
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (block $skip
        (br_if $skip (local.get $k))
        (loop $inner))
      (br $outer)))
  ;; Sum 0..n-1 in a loop (runUntilStopped checks the instance with it).
  (func (export "sum") (param $n i64) (result i64) (local $i i64) (local $s i64)
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i64.add (local.get $s) (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $s)))
