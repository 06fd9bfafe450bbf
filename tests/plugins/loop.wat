;; on_query_start never returns: a loop the budget or the clock must cut.
;; on_connection recurses without end: the interpreter's call stack traps.
(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func $recurse (export "on_connection") (result i32) (call $recurse))
  (func (export "on_query_start") (result i32)
    (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again))
    (i32.const 0)))
