;; on_query_start takes a parameter: refused (hooks are () -> i32).
(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (param i32) (result i32) (i32.const 0)))
