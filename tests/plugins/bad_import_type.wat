;; helios.deny with the wrong signature: refused.
(module
  (import "helios" "deny" (func $deny (param i32)))
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
