#!/usr/bin/env bash
# A lever of issue 17, measured and not taken (docs/performance.md, "The
# loop's registers"): in each function holding an interpreter's dispatch
# table (guest/w2c_rewrite.sh), wasm's i32 values kept in 64-bit C locals,
# always zero-extended, instead of wasm2c's `u32` ones, so that a value
# reaching a block from another one addresses memory without being
# zero-extended again (`mov %ebx,%eax` before `%gs:0x1c(%rax)`).
#
# usage: ERYX_GUEST_EXPERIMENT=bench/loop_u64.sh guest/build.sh
# (guest/build.sh runs it on the generated C after guest/w2c_rewrite.sh.)
set -euo pipefail
file=$1
# Every write keeps the upper half zero: loads, calls, comparisons and
# casts give 32-bit values and copies keep them; the one kind of statement
# that could carry past bit 31, wasm2c's compound arithmetic (`x += y`,
# `x <<= (y & 31)`), becomes `x = (u32)(x + y)`, wrapping as wasm does.
# Parameters become 64-bit copies of themselves. Fails on a compound
# statement written otherwise, on an assignment of anything else than those
# forms (so a new form of arithmetic cannot slip through unwrapped), and
# unless it wrapped at least one statement.
tmp=$file.wide
awk '
    function is_u32(v) { return v ~ /^w2c_i[0-9]+$/ || (v in narrow) }
    NR == FNR {
        if ($0 ~ /^static / && $0 ~ /\{$/) start = FNR
        if ($0 ~ /goto \*eryx_dispatch_/) loop[start] = 1
        next
    }
    FNR in loop {
        inside = 1; temps = 0; split("", narrow)
        line = $0; head = ""; copies = ""
        while (match(line, /u32 w2c_p[0-9]+/)) {
            name = substr(line, RSTART + 4, RLENGTH - 4); narrow[name] = 1
            head = head substr(line, 1, RSTART - 1) "u32 " name "_arg"
            line = substr(line, RSTART + RLENGTH)
            copies = copies "  u64 " name " = " name "_arg;\n"
        }
        printf "%s%s\n%s", head, line, copies
        next
    }
    inside && /^}/ {
        inside = 0
        if (!temps) { failed = 1; print "loop_u64.sh: a dispatching function without u32 temporaries" > "/dev/stderr"; exit 1 }
    }
    inside && /^  (u32|u64|f32|f64) w2c_/ { decl = 1; u32decl = /^  u32 w2c_l/ }
    inside && decl && u32decl {
        rest = $0
        while (match(rest, /w2c_l[0-9]+/)) { narrow[substr(rest, RSTART, RLENGTH)] = 1; rest = substr(rest, RSTART + RLENGTH) }
    }
    inside && /^  u32 w2c_l[0-9]+ = 0[,;]/ { sub(/^  u32 /, "  u64 ") }
    inside && /^  u32 w2c_i0[,;]/ { sub(/^  u32 /, "  u64 "); temps = 1 }
    inside && /^ *w2c_[il][0-9]+ [^ =]+= / && is_u32($1) {
        if ($0 !~ /^ *w2c_[il][0-9]+ (\+|-|\*|<<|>>|&|\||\^)= (w2c_[il][0-9]+|\(w2c_[il][0-9]+ & 31\));$/) {
            failed = 1; print "loop_u64.sh: a compound statement written otherwise: " $0 > "/dev/stderr"; exit 1
        }
        indent = $0; sub(/w2c_.*/, "", indent)
        var = $0; sub(/^ */, "", var); sub(/ .*/, "", var)
        op = $0; sub(/^ *w2c_[il][0-9]+ /, "", op); sub(/= .*/, "", op)
        rhs = $0; sub(/^[^=]*= /, "", rhs); sub(/;$/, "", rhs)
        print indent var " = (u32)(" var " " op " " rhs ");"
        n++; next
    }
    inside && !decl && /^ *w2c_[il][0-9]+ = / && is_u32($1) {
        rhs = $0; sub(/^ *w2c_[il][0-9]+ = /, "", rhs); sub(/;$/, "", rhs)
        if (rhs !~ /^(w2c_[ilp][0-9]+|[0-9]+u|!\(w2c_[a-z][0-9]+\)|w2c_[a-z][0-9]+ (==|!=|<|>|<=|>=) w2c_[a-z][0-9]+|w2c_[a-z][0-9]+ \? w2c_[ilp][0-9]+ : w2c_[ilp][0-9]+|instance->w2c_[A-Za-z0-9_]+)$/ &&
            rhs !~ /^(\(u32\)|i32_load(8_[su]|16_[su])?\(|w2c_[A-Za-z0-9_]+\(instance|CALL_INDIRECT\(|I32_(CTZ|CLZ|POPCNT)\()/) {
            failed = 1; print "loop_u64.sh: an assignment that might carry past bit 31: " $0 > "/dev/stderr"; exit 1
        }
    }
    { print; if (decl && $0 ~ /;$/) decl = 0 }
    END {
        if (failed) exit 1
        if (n < 1) { print "loop_u64.sh: no arithmetic in a dispatching function" > "/dev/stderr"; exit 1 }
        printf "loop_u64.sh: %d statements wrap to 32 bits\n", n > "/dev/stderr"
    }' "$file" "$file" >"$tmp" || { rm -f "$tmp"; exit 1; }
mv "$tmp" "$file"
