;; Memory: on_query_start grows one page at a time until memory.grow says
;; -1, then reports how many pages it got as the length of a rewrite (the
;; memory filled with 'x' up to there); on_connection grows without looking
;; at the answer, forever (the budget or the clock cuts it).
(module
  (import "helios" "rewrite" (func $rewrite (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (memory.fill (i32.const 0) (i32.const 120) (memory.size))
    (call $rewrite (i32.const 0) (memory.size))
    (i32.const 0))
  (func (export "on_connection") (result i32)
    (loop $more
      (drop (memory.grow (i32.const 1)))
      (br $more))
    (i32.const 0)))
