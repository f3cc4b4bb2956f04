;; The module all engine tests run: one export per way a call can end.
(module
  (import "host" "exit" (func $host_exit (param i32)))
  (import "host" "abort" (func $host_abort (param i32)))
  (import "host" "ping" (func $host_ping (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (tag $e (param i32))
  (type $i_i (func (param i32) (result i32)))
  (type $v_i (func (result i32)))
  (func $inc (type $i_i) local.get 0 i32.const 1 i32.add)
  (func $seven (type $v_i) i32.const 7)
  ;; table: [0] = $inc (i32)->i32, [1] = $seven ()->i32, [2], [3] = null
  (elem (i32.const 0) $inc $seven)

  (func (export "load32") (param i32) (result i32) local.get 0 i32.load)
  (func (export "store32") (param i32 i32) local.get 0 local.get 1 i32.store)
  ;; largest offset: addr + 0xffffffff reaches up to 8 GiB - 2
  (func (export "load_far") (param i32) (result i32)
    local.get 0 i32.load offset=0xffffffff)
  (func (export "store_far") (param i32 i32)
    local.get 0 local.get 1 i32.store offset=0xffffffff)
  (func (export "load64_far") (param i32) (result i64)
    local.get 0 i64.load offset=0xffffffff)
  (func (export "store8") (param i32 i32) local.get 0 local.get 1 i32.store8)
  (func (export "fill") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 memory.fill)

  (func (export "trap_unreachable") unreachable)
  (func (export "div_s") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "rem_u") (param i32 i32) (result i32) local.get 0 local.get 1 i32.rem_u)
  (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s)
  (func (export "call_ind") (param i32) (result i32)
    i32.const 41 local.get 0 call_indirect (type $i_i))

  ;; Not a tail call (the store after the call), so the C compiler cannot
  ;; turn the recursion into a loop.
  (func $recurse (export "recurse") (param i32) (result i32)
    (local i32)
    local.get 0 i32.const 1 i32.add call $recurse local.set 1
    i32.const 0 local.get 1 i32.store
    local.get 1)

  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "size") (result i32) memory.size)

  (func (export "throw_it") (param i32) local.get 0 throw $e)
  (func $thrower (param i32) local.get 0 throw $e)
  (func (export "catch_it") (param i32) (result i32)
    try (result i32)
      local.get 0 call $thrower
      i32.const -1
    catch $e
      i32.const 1 i32.add
    end)

  (func (export "call_exit") (param i32) local.get 0 call $host_exit)
  (func (export "call_abort") (param i32) local.get 0 call $host_abort)
  (func (export "ping") (param i32) (result i32) local.get 0 call $host_ping)
)
