#!/usr/bin/env bash
# A lever of issue 17, measured and not taken (docs/performance.md, "The
# loop's registers"): the interpreter loop's dispatch takes its table's
# address afresh at every dispatch (`lea table(%rip)`, one instruction more
# per bytecode) instead of holding it in a register the whole loop, as clang
# does for position-independent code. The register it frees is callee-saved,
# which the loop's value-stack pointer otherwise lacks: in the builds that
# ran 5-6 % slower that pointer lived in a stack slot (bench/loop_spills.py).
# The `lea` is written as asm, with the table as a memory operand
# (`table(%rip)`): an address the C code computes is loop-invariant, and
# clang hoists it into a register whatever else the dispatch does (an empty
# asm over it only added a copy of that register). x86-64 only, as the
# segment build is.
#
# usage: ERYX_GUEST_EXPERIMENT=bench/dispatch_lea.sh guest/build.sh
# (guest/build.sh runs it on the generated C after guest/w2c_rewrite.sh.)
set -euo pipefail
file=$1
tmp=$file.lea
n=$(grep -c 'goto \*eryx_dispatch_[0-9]*\[' "$file" || true)
[ "$n" -ge 1 ] || { echo "dispatch_lea.sh: no dispatch table in $file" >&2; exit 1; }
sed -E 's/goto \*(eryx_dispatch_[0-9]+)\[([a-z0-9_]+)\];/{ const void *const *eryx_t; __asm__ volatile("lea %1, %0" : "=r"(eryx_t) : "m"(\1)); goto *eryx_t[\2]; }/' \
    "$file" >"$tmp"
[ "$(grep -c '__asm__ volatile("lea %1, %0"' "$tmp")" = "$n" ] ||
    { echo "dispatch_lea.sh: rewrote a different number of dispatches than $n" >&2; exit 1; }
mv "$tmp" "$file"
echo "dispatch_lea.sh: $n dispatch(es) take their table's address afresh" >&2
