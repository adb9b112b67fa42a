;; Callers whose loop calls a callee whose own loop runs a given number of
;; passes: the preemption count must carry through every call and return
;; (see "The count across calls"). $n counts the callee's passes; each
;; callee leaves its function a different way.
(module
  (type $k (func (param i32)))
  (global $n (mut i32) (i32.const 0))
  (table 5 funcref)
  (elem (i32.const 0) $end $br $ret $tbl $rc)

  ;; falls off its final end
  (func $end (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if $l (local.get $k))))

  ;; leaves by a br_if to the body's label, from inside the loop
  (func $br (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if 1 (i32.eqz (local.get $k)))
      (br $l)))

  ;; leaves by return
  (func $ret (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (if (i32.eqz (local.get $k)) (then (return)))
      (br $l)))

  ;; leaves by a br_table whose default is the body's label
  (func $tbl (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_table $l 1 (i32.eqz (local.get $k)))))

  ;; leaves by a tail call of a loop-free function
  (func $rc (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if $l (local.get $k)))
    (return_call $leaf))
  (func $leaf (export "leaf"))

  ;; calls callee number $f (0 $end, 1 $br, 2 $ret, 3 $tbl, 4 $rc) $calls
  ;; times with $k
  (func (export "outer") (param $f i32) (param $calls i32) (param $k i32)
    (loop $l
      (call_indirect (type $k) (local.get $k) (local.get $f))
      (local.set $calls (i32.sub (local.get $calls) (i32.const 1)))
      (br_if $l (local.get $calls))))

  ;; the same with a direct call, through a tail call of $end
  (func $tail (param $k i32) (return_call $end (local.get $k)))
  (func (export "direct") (param $calls i32) (param $k i32)
    (loop $l
      (call $tail (local.get $k))
      (local.set $calls (i32.sub (local.get $calls) (i32.const 1)))
      (br_if $l (local.get $calls))))

  ;; endless recursion whose entry runs straight into a loop header that
  ;; goes unchecked (every pass reaches $inner past the call): the entry's
  ;; count must reach the callee although the function counts in $fuel
  (func $recur (export "recur")
    (loop $outer
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (call $recur)
      (loop $inner)
      (br $outer))))
