#!/usr/bin/env bash
# A lever of issue 17 being measured (docs/performance.md, "The segment on
# Intel"): the interpreter loop alone addresses linear memory through a base
# pointer read once at its entry, every other function through the %gs
# segment. A load through %gs costs Intel's L1 about two cycles more than
# one through a base register (bench/bench_segment.c); a base pointer in
# every function lost more than that (likely one register fewer everywhere). The
# loop is where most loads are. Mixing the two forms is sound: clang and
# gcc treat a %gs access and an ordinary one as possibly the same memory.
#
# usage: ERYX_GUEST_EXPERIMENT=bench/loop_base.sh guest/build.sh
# (guest/build.sh runs it on the generated C after guest/w2c_rewrite.sh.)
set -euo pipefail
file=$1
fn=w2c__PyEval_EvalFrameDefault
helpers='i32_load|i64_load|f32_load|f64_load|i32_load8_s|i64_load8_s|i32_load8_u|i64_load8_u|i32_load16_s|i64_load16_s|i32_load16_u|i64_load16_u|i64_load32_s|i64_load32_u|i32_store|i64_store|f32_store|f64_store|i32_store8|i32_store16|i64_store8|i64_store16|i64_store32'
tmp=$file.loopbase
FN=$fn awk '
    /^DEFINE_STORE\(i64_store32, / {
        print
        print "#define ERYX_B_LOAD(name, t1, t2, t3) static inline t3 eryx_b_##name(u8 *base, u64 addr) { \\"
        print "    typedef t1 __attribute__((aligned(1), may_alias)) eryx_u_; \\"
        print "    return (t3)(t2)*(const eryx_u_ *)(base + addr); }"
        print "#define ERYX_B_STORE(name, t1, t2) static inline void eryx_b_##name(u8 *base, u64 addr, t2 v) { \\"
        print "    typedef t1 __attribute__((aligned(1), may_alias)) eryx_u_; \\"
        print "    *(eryx_u_ *)(base + addr) = (t1)v; }"
        n = split("i32_load,u32,u32,u32 i64_load,u64,u64,u64 f32_load,f32,f32,f32 f64_load,f64,f64,f64 i32_load8_s,s8,s32,u32 i64_load8_s,s8,s64,u64 i32_load8_u,u8,u32,u32 i64_load8_u,u8,u64,u64 i32_load16_s,s16,s32,u32 i64_load16_s,s16,s64,u64 i32_load16_u,u16,u32,u32 i64_load16_u,u16,u64,u64 i64_load32_s,s32,s64,u64 i64_load32_u,u32,u64,u64", L, " ")
        for (i = 1; i <= n; i++) print "ERYX_B_LOAD(" L[i] ")"
        n = split("i32_store,u32,u32 i64_store,u64,u64 f32_store,f32,f32 f64_store,f64,f64 i32_store8,u8,u32 i32_store16,u16,u32 i64_store8,u8,u64 i64_store16,u16,u64 i64_store32,u32,u64", S, " ")
        for (i = 1; i <= n; i++) print "ERYX_B_STORE(" S[i] ")"
        defined = 1; next
    }
    index($0, "static u32 " ENVIRON["FN"] "(") == 1 && /\{$/ { inside = 1; start = NR + 1 }
    inside && /^}/ { inside = 0; end = NR }
    inside && !based && /^  FUNC_PROLOGUE;$/ {
        print; print "  u8 *const eryx_base = instance->w2c_memory.data;"; based = 1; next
    }
    { print }
    END {
        if (!defined || !based || !end) { print "loop_base.sh: the generated C is not as expected" > "/dev/stderr"; exit 1 }
        print start, end > "/dev/stderr"
    }' "$file" >"$tmp" 2>"$tmp.range"
read -r start end <"$tmp.range"
rm -f "$tmp.range"
# Line numbers of the output: the definitions added above the function.
added=$(grep -c '^ERYX_B_\|^#define ERYX_B_\|^    typedef t1\|^    return (t3)\|^    \*(eryx_u_' "$tmp")
start=$((start + added)) end=$((end + added + 1))
sed -E -i "${start},${end}s/\\b(${helpers})\\(&instance->w2c_memory, /eryx_b_\\1(eryx_base, /g" "$tmp"
n=$(sed -n "${start},${end}p" "$tmp" | grep -o 'eryx_b_[a-z0-9_]*(eryx_base, ' | wc -l)
left=$(sed -n "${start},${end}p" "$tmp" | grep -cE "\\b(${helpers})\\(&instance->w2c_memory" || true)
[ "$n" -ge 1000 ] && [ "$left" -eq 0 ] || { echo "loop_base.sh: $n accesses rewritten, $left left" >&2; exit 1; }
echo "loop_base.sh: $n accesses of $fn through eryx_base" >&2
mv "$tmp" "$file"
