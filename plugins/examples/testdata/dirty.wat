;; dirty: ballast that can also dirty memory at a chosen rate. A 4-byte
;; payload n (little-endian) grows memory to hold n bytes past the first
;; page and fills them (rounded down to 8 bytes) with pseudo-random
;; words that do not compress, seeded the same every time. A 5-byte
;; payload "d" + k (u32, little-endian) then writes to k pages past page 0,
;; continuing round-robin from where the previous event stopped, so a
;; driver that sends it at a steady rate dirties k pages per event. Every
;; payload other than the 4-byte one adds one to a hidden count and emits
;; it as decimal text. Used by the network migration benchmark.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i64) (i64.const 0))
  (global $cursor (mut i32) (i32.const 0))
  (func (export "wasmesh_abi_v1"))
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 1024)) (then unreachable))
    (i32.const 1024))
  (func $utoa (param $v i64) (result i32)
    (local $p i32)
    (local.set $p (i32.const 64))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (local.get $p))
  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (local $pages i32)
    (local $p i32)
    (local $k i32)
    (local $a i32)
    (local $end i32)
    (local $x i64)
    (if (i32.eq (local.get $len) (i32.const 4))
      (then
        (local.set $n (i32.load (local.get $ptr)))
        (local.set $pages (i32.add (i32.const 1) (i32.shr_u (i32.add (local.get $n) (i32.const 65535)) (i32.const 16))))
        (if (i32.gt_u (local.get $pages) (memory.size))
          (then
            (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
              (then (return (i32.const 1))))))
        ;; xorshift64 words: live state that does not compress, as a
        ;; real daemon's mostly does not (ballast's one byte would).
        (local.set $x (i64.const 0x9e3779b97f4a7c15))
        (local.set $a (i32.const 65536))
        (local.set $end (i32.add (i32.const 65536) (i32.and (local.get $n) (i32.const -8))))
        (block $filled
          (loop $word
            (br_if $filled (i32.ge_u (local.get $a) (local.get $end)))
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
            (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
            (i64.store (local.get $a) (local.get $x))
            (local.set $a (i32.add (local.get $a) (i32.const 8)))
            (br $word)))
        (return (i32.const 0))))
    (if (i32.and
          (i32.eq (local.get $len) (i32.const 5))
          (i32.and
            (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 100)) ;; 'd'
            (i32.gt_u (memory.size) (i32.const 1))))
      (then
        (local.set $k (i32.load (i32.add (local.get $ptr) (i32.const 1))))
        (block $done
          (loop $page
            (br_if $done (i32.eqz (local.get $k)))
            ;; page 1 + cursor mod (size - 1): the i32 at its start goes up by one
            (local.set $a (i32.shl
              (i32.add (i32.const 1) (i32.rem_u (global.get $cursor) (i32.sub (memory.size) (i32.const 1))))
              (i32.const 16)))
            (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (i32.const 1)))
            (global.set $cursor (i32.add (global.get $cursor) (i32.const 1)))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (br $page)))))
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (call $emit
      (local.tee $p (call $utoa (global.get $count)))
      (i32.sub (i32.const 64) (local.get $p)))
    (i32.const 0)))
