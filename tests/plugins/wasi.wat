;; A WASI program: refused (no file system, no clock, no network).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1)))
