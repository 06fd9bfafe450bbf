;; on_error logs what it saw, one line per call: "on_error <SQLSTATE> <message>".
;; With config {"deny": ...} it also refuses: user "evil" at login (28000
;; "no evil allowed") and statements starting with 'D' (42501 "denied by
;; errlog"), so that one instance's denial can be seen by another's on_error.
;; Memory: 0.. constants, 1024 config, 2048 user, 3072 SQL head, 4096 the line.
(module
  (import "helios" "field" (func $field (param i32 i32 i32) (result i32)))
  (import "helios" "deny" (func $deny (param i32 i32 i32)))
  (import "helios" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $denies (mut i32) (i32.const 0))
  (data (i32.const 0) "on_error ")                ;; 0: 9 bytes
  (data (i32.const 16) "28000no evil allowed")    ;; 16: sqlstate, 21: message (15)
  (data (i32.const 48) "42501denied by errlog")   ;; 48: sqlstate, 53: message (16)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "helios_init") (result i32)
    (drop (call $field (i32.const 0) (i32.const 1024) (i32.const 64)))
    ;; {"deny":...}: 'd' at offset 2
    (if (i32.eq (i32.load8_u (i32.const 1026)) (i32.const 100))
      (then (global.set $denies (i32.const 1))))
    (i32.const 0))
  (func (export "on_connection") (result i32)
    (if (i32.eqz (global.get $denies)) (then (return (i32.const 0))))
    (if (i32.and (i32.eq (call $field (i32.const 1) (i32.const 2048) (i32.const 64)) (i32.const 4))
                 (i32.eq (i32.load (i32.const 2048)) (i32.const 0x6c697665))) ;; "evil"
      (then
        (call $deny (i32.const 16) (i32.const 21) (i32.const 15))
        (return (i32.const 1))))
    (i32.const 0))
  (func (export "on_query_start") (result i32)
    (if (i32.eqz (global.get $denies)) (then (return (i32.const 0))))
    (i32.store8 (i32.const 3072) (i32.const 0))
    (drop (call $field (i32.const 6) (i32.const 3072) (i32.const 16)))
    (if (i32.eq (i32.load8_u (i32.const 3072)) (i32.const 68)) ;; 'D'
      (then
        (call $deny (i32.const 48) (i32.const 53) (i32.const 16))
        (return (i32.const 1))))
    (i32.const 0))
  (func (export "on_error") (result i32)
    (local $n i32)
    (local $p i32)
    (memory.copy (i32.const 4096) (i32.const 0) (i32.const 9))
    (local.set $p (i32.const 4105))
    ;; SQLSTATE (5 bytes), a space, the message (at most 1500 bytes)
    (local.set $n (call $field (i32.const 11) (local.get $p) (i32.const 5)))
    (if (i32.gt_s (local.get $n) (i32.const 5)) (then (local.set $n (i32.const 5))))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (local.set $p (i32.add (local.get $p) (local.get $n)))
    (i32.store8 (local.get $p) (i32.const 32))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (local.set $n (call $field (i32.const 12) (local.get $p) (i32.const 1500)))
    (if (i32.gt_s (local.get $n) (i32.const 1500)) (then (local.set $n (i32.const 1500))))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (local.set $p (i32.add (local.get $p) (local.get $n)))
    (call $log (i32.const 2) (i32.const 4096) (i32.sub (local.get $p) (i32.const 4096)))
    (i32.const 0)))
