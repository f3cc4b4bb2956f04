#!/usr/bin/env bash
# Splits wasm2c's output (after guest/w2c_rewrite.sh) into two translation
# units that compile side by side, one on each core: one compile of the
# Python guest's C took 6-8 minutes on one core, and a profiled stage 2 does
# three (docs/decisions.md, "The generated C is compiled as two units").
#
# usage: guest/w2c_split.sh FILE.c OUTDIR HOT_PERCENT
#   writes OUTDIR/guest-0.c (the first functions, and everything wasm2c
#   writes outside functions: data segments, instantiation, exports, the
#   static table) and OUTDIR/guest-1.c (the last functions, at least
#   HOT_PERCENT of the functions' lines).
#
# The cut is fixed by the module alone, never by a profile, so that the
# three compiles of a profiled build (instrumented, context-sensitive,
# final) see the same units and their profiles match. Functions come in
# wasm-ld's order: wasi-libc, then CPython's hot files (ThinLTO-linked,
# guest/wasm_lto.mk) come last, so the last unit holds the eval loop, the
# object types and the libc they call, and their calls to each other stay
# inside it, where they can be inlined.
#
# Each unit gets wasm2c's prelude (macros and static inline helpers) and
# every prototype. A small function (at most dup_lines lines) called from
# the other unit is copied into it, static in both, so that such a call can
# still be inlined. Any other function stays static unless the other unit
# names it (a call, or an entry of the static table, which is in
# guest-0.c); those become hidden globals, resolved when the two objects
# are linked into one (ld -r) and by the final link, with nothing left for
# the dynamic loader. Any line the split does not understand fails it, and
# with it the build (tests/engine/test_w2c_split.sh).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 FILE.c OUTDIR HOT_PERCENT" >&2; exit 2; }
file=$1 outdir=$2 hot=$3
case $hot in
    [1-9]|[1-9][0-9]) ;;
    *) echo "w2c_split.sh: HOT_PERCENT must be 1-99, not '$hot'" >&2; exit 2 ;;
esac
mkdir -p "$outdir"
# Functions of at most this many lines are copied rather than shared.
dup_lines=200
awk -v hot="$hot" -v dup_lines="$dup_lines" -v out0="$outdir/guest-0.c" -v out1="$outdir/guest-1.c" '
    function fail(msg) { print "w2c_split.sh: line " FNR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
    function fail_file(msg) { print "w2c_split.sh: " msg > "/dev/stderr"; bad = 1; exit 1 }
    # The name of the function whose signature starts on this line, or "".
    function fname(line,   s) {
        if (line !~ /^static [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(/) return ""
        s = line; sub(/^static [a-z0-9_]+ /, "", s); sub(/\(.*/, "", s)
        return s
    }
    # Every function name in s goes to names[] (the caller clears it).
    function names_in(s,   n) {
        while (match(s, /w2c_[A-Za-z0-9_]+/)) {
            n = substr(s, RSTART, RLENGTH)
            if (n in proto) names[n] = 1
            s = substr(s, RSTART + RLENGTH)
        }
    }
    # A signature (wasm2c wraps long ones over lines) ends in ");" for a
    # prototype, ") {" for a definition. Sets kind to "proto" or "def" at
    # its last line, "" before.
    function signature(   f) {
        kind = ""
        if (sig == "") {
            f = fname($0)
            if (f == "") return 0
            sig = f
        }
        if ($0 ~ /\);$/) kind = "proto"
        else if ($0 ~ /\) \{$/) kind = "def"
        return 1
    }

    # Pass 1: the order of the functions, their lengths, the functions each names.
    NR == FNR {
        if (!infn && signature()) {
            if (kind == "proto") {
                if (!(sig in proto)) nproto++
                proto[sig] = 1; after_protos = 1
            } else if (kind == "def") {
                if (!(sig in proto)) fail("a function without a prototype: " sig)
                infn = sig; order[++nfn] = sig; start[sig] = FNR
            }
            if (kind != "") sig = ""
            next
        }
        if (infn) {
            if ($0 ~ /^}$/) { len[infn] = FNR - start[infn] + 1; total += len[infn]; infn = ""; next }
            split("", names); names_in($0)
            for (n in names) uses[infn, n] = 1
            next
        }
        # Outside functions, after the prototypes: the table and the exports.
        if (after_protos) {
            split("", names); names_in($0)
            for (n in names) outside[n] = 1
        }
        next
    }

    # Between the passes: the cut and the shared functions.
    FNR == 1 {
        if (infn || sig != "") fail_file("the file ends inside a function")
        if (nfn == 0 || nproto != nfn)
            fail_file((nfn + 0) " functions for " (nproto + 0) " prototypes: wasm2c output changed")
        acc = 0
        for (i = nfn; i >= 1; i--) {
            acc += len[order[i]]
            if (acc * 100 >= total * hot) break
        }
        cut = i
        if (cut <= 1) fail_file("nothing left for the first unit")
        for (i = 1; i <= nfn; i++) part[order[i]] = (i < cut) ? 0 : 1
        # A small function called from the other unit is copied into it
        # (static in both), so that the call can still be inlined.
        for (k in uses) {
            split(k, kk, SUBSEP)
            if (part[kk[1]] != part[kk[2]] && len[kk[2]] <= dup_lines) copied[kk[2]] = 1
        }
        # Named in a unit that has no copy of it (a call, or the table and
        # exports, which are in unit 0): shared.
        for (k in uses) {
            split(k, kk, SUBSEP)
            if (kk[2] in copied) continue
            if (part[kk[1]] != part[kk[2]] || (kk[1] in copied)) shared[kk[2]] = 1
        }
        for (n in outside) if (part[n] != 0 && !(n in copied)) shared[n] = 1
        for (n in shared) nshared++
        for (n in copied) { ncopied++; copied_lines += len[n] }
        printf "w2c_split.sh: %d functions, %d lines; unit 1 from %s on (%d functions); " \
            "%d copied into both (%d lines); %d shared\n", \
            nfn, total, order[cut], nfn - cut + 1, ncopied, copied_lines, nshared > "/dev/stderr"
        line = "#define ERYX_W2C_SHARED __attribute__((visibility(\"hidden\")))"
        print line > out0; print line > out1
        after_protos = 0
    }

    # Pass 2: the units. A signature goes where its function goes
    # (a prototype to both); a body to its unit; the prelude to both;
    # anything else after the prototypes to unit 0.
    {
        if (!infn && signature()) {
            if (sig in shared) sub(/^static /, "ERYX_W2C_SHARED ")
            buf = buf $0 "\n"
            if (kind == "") next
            o = (kind == "proto" || sig in copied) ? "both" : (part[sig] ? out1 : out0)
            emit(buf, o)
            if (kind == "def") infn = sig
            buf = ""; sig = ""; after_protos = 1
            next
        }
        if (infn) { emit($0 "\n", o); if ($0 ~ /^}$/) infn = ""; next }
        emit($0 "\n", after_protos ? out0 : "both")
    }
    function emit(text, to) {
        if (to == "both") { printf "%s", text > out0; printf "%s", text > out1 }
        else printf "%s", text > to
    }
    END { if (bad) exit 1 }' "$file" "$file"
