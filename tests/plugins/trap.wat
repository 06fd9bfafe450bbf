;; Traps of each kind: unreachable, a load outside memory, a host call with
;; a pointer outside memory, a host call a hook may not make.
(module
  (import "helios" "field" (func $field (param i32 i32 i32) (result i32)))
  (import "helios" "deny" (func $deny (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "28000")
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32) (unreachable))
  (func (export "on_connection") (result i32)
    (i32.load (i32.const 0xfffffff0)))
  (func (export "on_query_complete") (result i32)
    ;; the SQL field copied to the last bytes of memory: past its end
    (call $field (i32.const 7) (i32.const 65530) (i32.const 100)))
  (func (export "on_error") (result i32)
    (call $deny (i32.const 0) (i32.const 0) (i32.const 5))
    (i32.const 0)))
