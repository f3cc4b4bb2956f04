;; The module all engine tests run: one export per way a call can end.
(module
  (import "host" "exit" (func $host_exit (param i32)))
  (import "host" "abort" (func $host_abort (param i32)))
  (import "host" "ping" (func $host_ping (param i32) (result i32)))
  ;; Suspends the fiber call (eryx__engine_suspend); returns what the
  ;; resumer left in the host instance.
  (import "host" "wait" (func $host_wait (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (tag $e (param i32))
  (type $i_i (func (param i32) (result i32)))
  (type $v_i (func (result i32)))
  ;; $i_i again: call_ind calls $inc through it, as wasm allows (types are
  ;; compared by signature, guest/w2c_table.h makes them canonical).
  (type $i_i_again (func (param i32) (result i32)))
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
  ;; A 64-bit store at one address between two 32-bit loads at another:
  ;; wasm memory has no types, so where the two overlap the second load
  ;; must see the store (the C compiler of the generated code may not
  ;; assume that accesses of different widths never alias).
  (func (export "pun") (param i32 i32 i32) (result i32)
    local.get 0 i32.load
    local.get 1 local.get 2 i64.extend_i32_u i64.store
    local.get 0 i32.load
    i32.add)
  (func (export "store8") (param i32 i32) local.get 0 local.get 1 i32.store8)
  (func (export "fill") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 memory.fill)

  (func (export "trap_unreachable") unreachable)
  (func (export "div_s") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "rem_u") (param i32 i32) (result i32) local.get 0 local.get 1 i32.rem_u)
  (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s)
  (func (export "call_ind") (param i32) (result i32)
    i32.const 41 local.get 0 call_indirect (type $i_i_again))

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

  ;; Fibers. n round trips: store i at [0], wait (the host reads [0] and
  ;; writes [4]), add [4] to the sum.
  (func (export "roundtrips") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    block $done
      loop $l
        local.get $i local.get $n i32.ge_u br_if $done
        i32.const 0 local.get $i i32.store
        i32.const 0 call $host_wait drop
        local.get $sum i32.const 4 i32.load i32.add local.set $sum
        local.get $i i32.const 1 i32.add local.set $i
        br $l
      end
    end
    local.get $sum)

  ;; n waits, then end the call in way `what`: 0 return n + the sum of what
  ;; the waits returned, 1 unreachable, 2 out-of-bounds load, 3 exit(77),
  ;; 4 abort(55), 5 runaway recursion, 6 spin forever, 7 ping(1) then spin
  ;; forever, 8 return ping(2), 9 throw, 10 grow memory by 1 page forever.
  (func (export "wait_then") (param $n i32) (param $what i32) (result i32)
    (local $i i32) (local $sum i32)
    block $done
      loop $l
        local.get $i local.get $n i32.ge_u br_if $done
        local.get $sum local.get $i call $host_wait i32.add local.set $sum
        local.get $i i32.const 1 i32.add local.set $i
        br $l
      end
    end
    block $b10 block $b9 block $b8 block $b7 block $b6 block $b5 block $b4
    block $b3 block $b2 block $b1 block $b0
      local.get $what
      br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b0
    end
    local.get $n local.get $sum i32.add return
    end
    unreachable
    end
    i32.const 65536 i32.load return
    end
    i32.const 77 call $host_exit i32.const 0 return
    end
    i32.const 55 call $host_abort i32.const 0 return
    end
    i32.const 0 call $recurse return
    end
    loop $s6 br $s6 end unreachable
    end
    i32.const 1 call $host_ping drop
    loop $s7 br $s7 end unreachable
    end
    i32.const 2 call $host_ping return
    end
    i32.const 99 throw $e
    end
    loop $s10 i32.const 1 memory.grow drop br $s10 end unreachable)

  ;; A bytecode interpreter, as CPython's eval loop is one: a switch of
  ;; 200 cases at the head of a loop, which guest/w2c_rewrite.sh --dispatch
  ;; turns into a table of label addresses. On an accumulator from 0, the
  ;; bytes from $pc: 0 returns it, 1 adds 1, 2 doubles it, 199 adds 100;
  ;; any other byte (3-198 through the table's entries, 200-255 past its
  ;; end) returns -1.
  (func (export "interp") (param $pc i32) (result i32)
    (local $acc i32)
    block $bad
      loop $next
        block $add100
          block $double
            block $inc
              block $halt
                local.get $pc i32.load8_u
                br_table $halt $inc $double
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad $bad
          $add100 $bad
              end
              local.get $acc return
            end
            local.get $acc i32.const 1 i32.add local.set $acc
            local.get $pc i32.const 1 i32.add local.set $pc
            br $next
          end
          local.get $acc i32.const 1 i32.shl local.set $acc
          local.get $pc i32.const 1 i32.add local.set $pc
          br $next
        end
        local.get $acc i32.const 100 i32.add local.set $acc
        local.get $pc i32.const 1 i32.add local.set $pc
        br $next
      end
    end
    i32.const -1)

  ;; n steps of xorshift32 from 1: a loop the C compiler cannot shortcut.
  (func (export "count") (param $n i32) (result i32)
    (local $x i32)
    i32.const 1 local.set $x
    block $done
      loop $l
        local.get $n i32.eqz br_if $done
        local.get $x local.get $x i32.const 13 i32.shl i32.xor local.set $x
        local.get $x local.get $x i32.const 17 i32.shr_u i32.xor local.set $x
        local.get $x local.get $x i32.const 5 i32.shl i32.xor local.set $x
        local.get $n i32.const 1 i32.sub local.set $n
        br $l
      end
    end
    local.get $x)
)
