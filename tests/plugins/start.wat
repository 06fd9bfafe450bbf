;; A start function would run at instantiation without limits: refused.
(module
  (memory (export "memory") 1)
  (func $s (loop $l (br $l)))
  (start $s)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
