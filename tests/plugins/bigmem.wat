;; Starts with 4 MiB of memory (64 pages): refused under memory_mb = 2.
(module
  (memory (export "memory") 64)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
