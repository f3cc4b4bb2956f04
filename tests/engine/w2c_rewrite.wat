;; The module tests/engine/test_w2c_rewrite.sh rewrites with
;; guest/w2c_rewrite.sh: one of each construct the rewrite hooks, as the
;; Python guest has them (an exported memory with data segments, a table
;; filled by an active elem segment, call_indirect, loops, an interpreter's
;; dispatch).
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (data (i32.const 64) "world")
  (table 4 funcref)
  (type $v_i (func (result i32)))
  (func $seven (type $v_i) i32.const 7)
  (func $eight (type $v_i) i32.const 8)
  (elem (i32.const 0) $seven $eight)
  (func (export "ci") (param i32) (result i32)
    local.get 0 call_indirect (type $v_i))
  (func (export "sum") (param i32) (result i32) (local i32)
    loop $l
      local.get 1 local.get 0 i32.add local.set 1
      local.get 0 i32.const 1 i32.sub local.tee 0
      br_if $l
    end
    local.get 1)
  (func (export "fill") (param i32 i32)
    loop $l
      local.get 0 local.get 1 i32.store8
      local.get 0 i32.const 1 i32.add local.tee 0
      i32.const 100 i32.lt_u
      br_if $l
    end
    local.get 0 local.get 1 i32.const 4 memory.fill
    local.get 0 local.get 1 i32.const 4 memory.copy)
  ;; An interpreter's dispatch: a switch of 200 cases at the head of a
  ;; loop (the rewrite makes it a table of label addresses). Returns the
  ;; address of the first non-zero byte from the one it is given.
  (func (export "dispatch") (param i32) (result i32)
    block $other
      loop $next
        block $zero
          local.get 0 i32.load8_u
          br_table $zero
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
        $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other $other
            $other
        end
        local.get 0 i32.const 1 i32.add local.set 0
        br $next
      end
    end
    local.get 0)
  ;; Replaced by the test to make modules the rewrite must refuse.
  (func (export "extra")))
