#!/usr/bin/env bash
# A lever of issue 17 being measured (docs/performance.md, "The segment on
# Intel"): linear memory addressed relative to the instance. The engine
# places every sandbox's instance ERYX_MEMORY_DELTA bytes before its
# memory's data (src/engine/engine.h, "Instance blocks"), so a wasm address
# a is (u8 *)&instance->w2c_memory + ERYX_MEMORY_DELTA + a: the base is the
# instance pointer every generated function already holds, one addressing
# mode (base + index + displacement), no %gs prefix (about two cycles more
# per L1 hit on Intel: bench/bench_segment.c) and no second base register
# (what the per-function and loop-only base pointers paid for).
#
# usage: ERYX_GUEST_EXPERIMENT=bench/instance_base.sh guest/build.sh
# (guest/build.sh runs it on the generated C after guest/w2c_rewrite.sh;
# the build is still the %gs variant as far as the engine knows, which then
# sets a base nothing reads.)
set -euo pipefail
file=$1
delta=$(sed -n 's/^#define ERYX_MEMORY_DELTA \([0-9]*\)u$/\1/p' \
        "$(dirname "$0")/../src/engine/engine.h")
[ -n "$delta" ] || { echo "instance_base.sh: no ERYX_MEMORY_DELTA in engine.h" >&2; exit 1; }
anchor='DEFINE_LOAD(i32_load, u32, u32, u32)'
[ "$(grep -cxF "$anchor" "$file")" = 1 ] || { echo "instance_base.sh: the generated C is not as expected" >&2; exit 1; }
defs="#undef ERYX_MEM_LOAD\\
#undef ERYX_MEM_STORE\\
#define ERYX_MEM_AT(mem, addr) ((u8 *)(mem) + ${delta}u + (addr))\\
#define ERYX_MEM_LOAD(dst, mem, addr, t) do { typedef t __attribute__((aligned(1), may_alias)) eryx_u_; (dst) = *(const eryx_u_ *)ERYX_MEM_AT(mem, addr); } while (0)\\
#define ERYX_MEM_STORE(mem, addr, val, t) do { typedef t __attribute__((aligned(1), may_alias)) eryx_u_; *(eryx_u_ *)ERYX_MEM_AT(mem, addr) = (val); } while (0)"
sed -i "/^DEFINE_LOAD(i32_load, u32, u32, u32)\$/i\\
$defs" "$file"
echo "instance_base.sh: memory addressed from the instance (delta $delta)" >&2
