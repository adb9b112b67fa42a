;; echo-wat: every event is answered with its payload, unchanged (an empty
;; payload gives one empty output). Guest ABI v1 in raw WebAssembly text.
(module
  (import "wasmesh" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)

  (func (export "wasmesh_abi_v1"))

  ;; The input buffer lives at 1024 and memory grows to fit the largest
  ;; input asked for. The page count is computed in i64 so that a huge len
  ;; cannot wrap around; a request memory cannot hold traps instead of
  ;; handing out a short buffer.
  (func (export "wasmesh_input") (param $len i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64 (i64.shr_u
        (i64.add (i64.extend_i32_u (local.get $len)) (i64.const 66559)) ;; 1024 + 65535
        (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (i32.const 1024))

  (func (export "wasmesh_process")
    (param $origin i64) (param $seq i64) (param $ptr i32) (param $len i32) (result i32)
    (call $emit (local.get $ptr) (local.get $len))
    (i32.const 0)))
