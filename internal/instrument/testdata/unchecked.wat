;; Runaway guests without loops whose functions mostly go without an entry
;; check (see bounded.go), for the preemption tests: each must still be
;; stopped by the flag. Built with wat2wasm; the $dag chain is generated
;; (f1 calls f2 twice, ..., f47 calls f48 twice: 2^47 calls, no loop, no
;; recursion, every function small and reached only by direct calls).
(module
  (type $t (func (param i32)))
  (table 1 funcref)
  (elem (i32.const 0) $ind)
  (global $n (mut i32) (i32.const 0))
  ;; An infinite loop, for contrast.
  (func (export "spin") (loop $l (br $l)))
  ;; Direct recursion, a binary tree of calls 2^n deep n: $rec is small
  ;; and reached only by direct calls.
  (func $rec (param $n i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (local.get $n) (then
      (call $rec (i32.sub (local.get $n) (i32.const 1)))
      (call $rec (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "direct") (param $n i32) (call $rec (local.get $n)))
  ;; Mutual recursion of the same shape.
  (func $even (param $n i32)
    (if (local.get $n) (then
      (call $odd (i32.sub (local.get $n) (i32.const 1)))
      (call $odd (i32.sub (local.get $n) (i32.const 1))))))
  (func $odd (param $n i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (local.get $n) (then
      (call $even (i32.sub (local.get $n) (i32.const 1)))
      (call $even (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "mutual") (param $n i32) (call $even (local.get $n)))
  ;; Recursion through call_indirect only: $ind is in the table and named
  ;; by no direct call.
  (func $ind (param $n i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (local.get $n) (then
      (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))
      (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0)))))
  (func (export "indirect") (param $n i32) (call $ind (local.get $n)))
  ;; The doubling DAG.
  (func (export "dag") (call $f1))
  (func $f1 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f2) (call $f2))
  (func $f2 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f3) (call $f3))
  (func $f3 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f4) (call $f4))
  (func $f4 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f5) (call $f5))
  (func $f5 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f6) (call $f6))
  (func $f6 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f7) (call $f7))
  (func $f7 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f8) (call $f8))
  (func $f8 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f9) (call $f9))
  (func $f9 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f10) (call $f10))
  (func $f10 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f11) (call $f11))
  (func $f11 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f12) (call $f12))
  (func $f12 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f13) (call $f13))
  (func $f13 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f14) (call $f14))
  (func $f14 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f15) (call $f15))
  (func $f15 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f16) (call $f16))
  (func $f16 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f17) (call $f17))
  (func $f17 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f18) (call $f18))
  (func $f18 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f19) (call $f19))
  (func $f19 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f20) (call $f20))
  (func $f20 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f21) (call $f21))
  (func $f21 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f22) (call $f22))
  (func $f22 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f23) (call $f23))
  (func $f23 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f24) (call $f24))
  (func $f24 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f25) (call $f25))
  (func $f25 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f26) (call $f26))
  (func $f26 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f27) (call $f27))
  (func $f27 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f28) (call $f28))
  (func $f28 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f29) (call $f29))
  (func $f29 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f30) (call $f30))
  (func $f30 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f31) (call $f31))
  (func $f31 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f32) (call $f32))
  (func $f32 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f33) (call $f33))
  (func $f33 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f34) (call $f34))
  (func $f34 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f35) (call $f35))
  (func $f35 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f36) (call $f36))
  (func $f36 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f37) (call $f37))
  (func $f37 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f38) (call $f38))
  (func $f38 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f39) (call $f39))
  (func $f39 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f40) (call $f40))
  (func $f40 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f41) (call $f41))
  (func $f41 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f42) (call $f42))
  (func $f42 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f43) (call $f43))
  (func $f43 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f44) (call $f44))
  (func $f44 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f45) (call $f45))
  (func $f45 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f46) (call $f46))
  (func $f46 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f47) (call $f47))
  (func $f47 (global.set $n (i32.add (global.get $n) (i32.const 1))) (call $f48) (call $f48))
  (func $f48 (global.set $n (i32.add (global.get $n) (i32.const 1))))
  ;; Sum 0..n-1, for the checks after a stop (see runUntilStopped).
  (func (export "sum") (param $n i64) (result i64) (local $i i64) (local $s i64)
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i64.add (local.get $s) (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $s))
)
