;; No helios_abi_version: refused.
(module
  (memory (export "memory") 1)
  (func (export "on_query_start") (result i32) (i32.const 0)))
