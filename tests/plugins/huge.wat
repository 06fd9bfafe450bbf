;; Starts with 1025 pages (64 MiB + 64 KiB): refused at load, whatever
;; memory_mb says (loading instantiates it once for its checks).
(module
  (memory (export "memory") 1025)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
