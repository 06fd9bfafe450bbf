;; The host functions round trip. Memory map: 0.. constants, 1024 config,
;; 2048 user, 4096 SQL (1024 bytes at most), 8192 fingerprint.
(module
  (import "helios" "field" (func $field (param i32 i32 i32) (result i32)))
  (import "helios" "deny" (func $deny (param i32 i32 i32)))
  (import "helios" "rewrite" (func $rewrite (param i32 i32)))
  (import "helios" "hint" (func $hint (param i32 i32 i32 i32) (result i32)))
  (import "helios" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $config_len (mut i32) (i32.const -2))
  (data (i32.const 0) "28000no evil allowed")       ;; 0: sqlstate, 5: message (15)
  (data (i32.const 32) "42501blocked by api")        ;; 32: sqlstate, 37: message (14)
  (data (i32.const 64) "routereplicacacheskip")      ;; 64 route, 69 replica, 76 cache, 81 skip
  (data (i32.const 96) "SELECT 2")                   ;; 96: rewrite (8)
  (data (i32.const 112) "colour")                    ;; 112: unknown hint key (6)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "helios_init") (result i32)
    (global.set $config_len (call $field (i32.const 0) (i32.const 1024) (i32.const 1024)))
    ;; {"refuse":...} makes init fail
    (if (i32.eq (i32.load8_u (i32.const 1026)) (i32.const 114)) ;; 'r'
      (then (return (i32.const 7))))
    (i32.const 0))
  (func (export "on_connection") (result i32)
    (local $n i32)
    (local.set $n (call $field (i32.const 1) (i32.const 2048) (i32.const 64)))
    ;; user "evil": deny
    (if (i32.and (i32.eq (local.get $n) (i32.const 4))
                 (i32.eq (i32.load (i32.const 2048)) (i32.const 0x6c697665))) ;; "evil"
      (then
        (call $deny (i32.const 0) (i32.const 5) (i32.const 15))
        (return (i32.const 1))))
    ;; no SQL at login: field says -1
    (if (i32.ne (call $field (i32.const 6) (i32.const 4096) (i32.const 16)) (i32.const -1))
      (then (unreachable)))
    ;; the config is there in hooks too
    (if (i32.ne (call $field (i32.const 0) (i32.const 1024) (i32.const 0)) (global.get $config_len))
      (then (unreachable)))
    (i32.const 0))
  (func (export "on_query_start") (result i32)
    (local $n i32)
    (local.set $n (call $field (i32.const 6) (i32.const 4096) (i32.const 1024)))
    (if (i32.gt_u (local.get $n) (i32.const 1024)) (then (local.set $n (i32.const 1024))))
    (call $log (i32.const 1) (i32.const 4096) (local.get $n))
    ;; unknown hint key: -1, not a trap
    (if (i32.ne (call $hint (i32.const 112) (i32.const 6) (i32.const 69) (i32.const 7)) (i32.const -1))
      (then (unreachable)))
    (drop (call $hint (i32.const 64) (i32.const 5) (i32.const 69) (i32.const 7)))
    (drop (call $hint (i32.const 76) (i32.const 5) (i32.const 81) (i32.const 4)))
    ;; "DROP ...": deny; "select ...": rewrite; "RETURN ...": return 1 without deny()
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 68)) ;; 'D'
      (then
        (call $deny (i32.const 32) (i32.const 37) (i32.const 14))
        (return (i32.const 0))))
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 115)) ;; 's'
      (then (call $rewrite (i32.const 96) (i32.const 8))))
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 82)) ;; 'R'
      (then (return (i32.const 1))))
    (i32.const 0))
  (func (export "on_query_complete") (result i32)
    (local $n i32)
    (local.set $n (call $field (i32.const 7) (i32.const 8192) (i32.const 64)))
    (call $log (i32.const 2) (i32.const 8192) (local.get $n))
    (i32.const 1)) ;; ignored
  (func (export "on_error") (result i32)
    ;; rewrite from on_error: trap
    (call $rewrite (i32.const 96) (i32.const 8))
    (i32.const 0)))
