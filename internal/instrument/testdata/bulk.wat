;; bulk: workloads for BenchmarkBulkOverhead. Memory is 1025 pages.
(module
  (memory 1025)
  ;; fill(n): one memory.fill of n bytes at 0.
  (func (export "fill") (param $n i32) (result i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (local.get $n))
  ;; copy(n): one memory.copy of n bytes from 32 MiB to 0.
  (func (export "copy") (param $n i32) (result i32)
    (memory.copy (i32.const 0) (i32.const 33554432) (local.get $n))
    (local.get $n))
  ;; small(n): n memory.copy of 16 bytes each (what compilers emit for
  ;; struct copies), the worst case for a per-instruction charge.
  (func (export "small") (param $n i32) (result i32)
    (local $i i32)
    (loop $l
      (memory.copy
        (i32.and (i32.mul (local.get $i) (i32.const 16)) (i32.const 0xffff))
        (i32.const 65536) (i32.const 16))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i))
  ;; smallvar(n): as small, but the 16 comes from a local, so every copy
  ;; goes through the $copy helper (what a memcpy with a runtime length
  ;; compiles to).
  (func (export "smallvar") (param $n i32) (result i32)
    (local $i i32) (local $len i32)
    (local.set $len (i32.const 16))
    (loop $l
      (memory.copy
        (i32.and (i32.mul (local.get $i) (i32.const 16)) (i32.const 0xffff))
        (i32.const 65536) (local.get $len))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))
