;; Imports from a module other than "helios": refused.
(module
  (import "env" "foo" (func $foo))
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
