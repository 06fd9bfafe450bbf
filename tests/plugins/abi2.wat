;; Says ABI version 2: refused by a v1 host.
(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 2))
  (func (export "on_query_start") (result i32) (i32.const 0)))
