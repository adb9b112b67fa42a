;; A module with a name section (build with wat2wasm --debug-names): a trap
;; two calls deep, so the trace names both functions.
(module $guest
  (func $explode (param $why i32)
    (if (local.get $why) (then (unreachable))))
  (func $outer (export "outer") (param $n i32)
    (call $explode (local.get $n)))
)
