;; No exported memory: refused.
(module
  (memory 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
