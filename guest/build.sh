#!/usr/bin/env bash
# Builds the guest and prints the directory holding it:
#   guest.wasm   CPython + guest/eryx_guest.c, a WASI reactor (abi.h), and
#                guest/sqlite_locks.c (SQLite's locks: docs/batteries.md)
#   stdlib.img   the .pyc standard library + the _eryx package (vfs.h format)
#   guest.h      wasm2c's header for the module
#   guest.o      wasm2c's C for the module, compiled
# Stages are cached in $ERYX_CACHE_DIR keyed by a hash of their inputs, so a
# rebuild with nothing changed takes a second.
#
# ERYX_GUEST_CC (default clang-22) and ERYX_GUEST_CFLAGS (default -O2) choose
# how the 70 MB of generated C is compiled; ERYX_GUEST_PGO=1 (the default
# with clang) compiles it three times: instrumented, instrumented again
# after optimising with the first profile (a context-sensitive profile), and
# with both profiles of guest/pgo_train.py's training: docs/performance.md.
# ERYX_GUEST_FUEL=1 builds the variant that counts fuel (docs/limits.md);
# ERYX_GUEST_SEGMENT=0 the variant that addresses linear memory through a
# base pointer rather than the %gs segment (default 1 on x86-64: ~20 % faster,
# but valgrind cannot run it; src/engine/segment.c). A variant's output
# directory is the default's path with "-fuel" and/or "-noseg" appended, and
# "-pgo0"/"-pgo1" when ERYX_GUEST_PGO is not the compiler's default and
# "-cc" and a hash when ERYX_GUEST_CC or ERYX_GUEST_CFLAGS are not the
# defaults: a build with -march=native must never stand in for the
# portable one (docs/performance.md, "CPU baseline").
# ERYX_GUEST_SPLIT (default 40) compiles the generated C as two units side
# by side, the second holding the last functions, that percentage of the
# lines (guest/w2c_split.sh; 0: one unit, as before); its directory gets
# "-split" and the value when not the default.
# ERYX_GUEST_EXPERIMENT=SCRIPT rewrites the generated C further (SCRIPT
# FILE.c, after guest/w2c_rewrite.sh): a lever being measured, never the
# default (bench/README.md); its directory gets "-x" and the script's hash.
#
# usage: guest/build.sh [--stage1]
# --stage1 stops after stage 1 and prints its directory: scripts/test builds
# that much first, then a variant's stage 2 beside the default's.
set -euo pipefail
case "${1:-}" in
    "") stop_after_stage1=0 ;;
    --stage1) stop_after_stage1=1 ;;
    *) echo "usage: guest/build.sh [--stage1]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/env.sh"
default_cc="clang-$ERYX_LLVM -O2"
ERYX_GUEST_CC=${ERYX_GUEST_CC:-clang-$ERYX_LLVM}
ERYX_GUEST_CFLAGS=${ERYX_GUEST_CFLAGS:--O2}
ERYX_GUEST_FUEL=${ERYX_GUEST_FUEL:-0}
case "$ERYX_GUEST_CC" in
    clang*) pgo_default=1 ;;
    *) pgo_default=0 ;;
esac
ERYX_GUEST_PGO=${ERYX_GUEST_PGO:-$pgo_default}
split_default=40
ERYX_GUEST_SPLIT=${ERYX_GUEST_SPLIT:-$split_default}
case $ERYX_GUEST_SPLIT in
    0|[1-9]|[1-9][0-9]) ;;
    *) echo "guest/build.sh: ERYX_GUEST_SPLIT must be 0-99, not '$ERYX_GUEST_SPLIT'" >&2; exit 2 ;;
esac
experiment=${ERYX_GUEST_EXPERIMENT:-}
[ -z "$experiment" ] || experiment=$(cd "$(dirname "$experiment")" && pwd)/$(basename "$experiment")
if [ "$(uname -m)" = x86_64 ]; then
    ERYX_GUEST_SEGMENT=${ERYX_GUEST_SEGMENT:-1}
else
    ERYX_GUEST_SEGMENT=0
fi
log() { echo "guest: $*" >&2; }

"$here/../scripts/install-deps.sh"
pytop=$("$here/build-python.sh" | tail -n 1)
src="$pytop/src"
wasi="$pytop/wasi"
sdk="$pytop/wasi-sdk"
native_py="$pytop/native/python"

# Stage 1: guest.wasm and stdlib.img. The key is also the build id (the
# session format embeds it: src/CMakeLists.txt), so it is made of what the
# stage is built from, never of where: CPython's stage by its name (its
# versions and recipe), the compiler's version, our sources and the files of
# the Python package with their names. Where things are must not reach the
# outputs either (below), or one id would name different modules.
key=$( { basename "$pytop"; "$sdk/bin/clang" --version | head -n 1; cat "$0";
         echo "tzdata $ERYX_TZDATA_DEB $ERYX_GUEST_TZPATH";
         cd "$here" && cat eryx_guest.c host_string.c sqlite_locks.c abi.h print-vars.mk pack_stdlib.py &&
         find python -type f -name '*.py' | LC_ALL=C sort |
         while read -r f; do echo "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)
out="$ERYX_CACHE_DIR/guest-$key"
if [ ! -f "$out/stamp" ]; then
    t0=$(date +%s)
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    # The link line of python.wasm, with our reactor object instead of main.
    vars=$(make -s -C "$wasi" -f Makefile -f "$here/print-vars.mk" print-link-vars)
    eval "$vars"
    log "compiling eryx_guest.c and linking guest.wasm"
    # __FILE__ (CPython's inline functions assert) names fixed directories,
    # not this checkout's or this cache's.
    "$sdk/bin/clang" -O2 -I"$src/Include" -I"$wasi" -I"$here" \
        -ffile-prefix-map="$ERYX_CACHE_DIR"=/eryx-cache -ffile-prefix-map="$here"=/eryx-guest \
        -c "$here/eryx_guest.c" -o "$out.tmp/eryx_guest.o"
    # memchr and the rest in place of wasi-libc's (before it on the link
    # line); no builtins, so that clang makes no libc call of their loops.
    "$sdk/bin/clang" -O2 -fno-builtin -c "$here/host_string.c" -o "$out.tmp/host_string.o"
    # sqlite_locks.c calls the guest's SQLite: its headers are in the prefix
    # of its library stage (guest/clibs/build.sh prints "NAME PREFIX ...").
    sqlite=$("$here/clibs/build.sh" "$sdk" | awk '$1 == "sqlite3" { print $2 }')
    "$sdk/bin/clang" -O2 -I"$sqlite/include" -ffile-prefix-map="$here"=/eryx-guest \
        -c "$here/sqlite_locks.c" -o "$out.tmp/sqlite_locks.o"
    # CPython's hot files are bitcode (guest/wasm_lto.mk): this link
    # optimises them across files. It shares python.wasm's ThinLTO cache,
    # where most of its modules were already compiled.
    # shellcheck disable=SC2086
    (cd "$wasi" && "$sdk/bin/clang" -mexec-model=reactor \
        -z stack-size=8388608 -Wl,--stack-first -Wl,--initial-memory=20971520 \
        -Wl,--strip-debug -Wl,--thinlto-cache-dir="$wasi/thinlto-cache" \
        "$out.tmp/eryx_guest.o" "$out.tmp/host_string.o" "$out.tmp/sqlite_locks.o" $PY_LIBS -o "$out.tmp/guest.wasm")
    log "packing the standard library"
    # CPython's build configuration (sysconfig) names the build directories:
    # shipped with the cache directory replaced by a fixed name.
    mkdir "$out.tmp/sysconfig"
    for f in "$wasi"/build/lib.wasi-wasm32-*/*.py; do
        text=$(cat "$f")
        printf '%s\n' "${text//"$ERYX_CACHE_DIR"//eryx-cache}" >"$out.tmp/sysconfig/${f##*/}"
    done
    # The time zone database (docs/batteries.md): Debian's tzdata and
    # tzdata-legacy unpacked together (legacy names are links into tzdata),
    # without the right/ and posix/ variants, at the guest's TZPATH.
    mkdir "$out.tmp/tz"
    for p in tzdata tzdata-legacy; do
        dpkg-deb -x "$("$here/../scripts/fetch-sources.sh" --deb "$p=$ERYX_TZDATA_DEB" | tail -n 1)" \
            "$out.tmp/tz"
    done
    zoneinfo="$out.tmp/tz/usr/share/zoneinfo"
    rm -rf "$zoneinfo/right" "$zoneinfo/posix"
    "$native_py" "$here/pack_stdlib.py" "$src/Lib" "$out.tmp/sysconfig" "$here/python" \
        --prefix "/usr/lib/python$ERYX_PY_VERSION" -o "$out.tmp/stdlib.img" \
        --data "${ERYX_GUEST_TZPATH#/usr/lib/python"$ERYX_PY_VERSION"/}=$zoneinfo"
    rm -rf "$out.tmp/sysconfig" "$out.tmp/tz"
    for f in guest.wasm stdlib.img; do
        for dir in "$ERYX_CACHE_DIR" "$here"; do
            if grep -qF "$dir" "$out.tmp/$f"; then
                log "$f names $dir: the build id would not say what it holds"
                exit 1
            fi
        done
    done
    touch "$out.tmp/stamp"
    rm -rf "$out" && mv "$out.tmp" "$out"
    log "guest.wasm + stdlib.img: $(( $(date +%s) - t0 )) s"
fi

# Where the sources and the native build python are, for the tests that run
# CPython's own test suite and for the benchmarks. Written only when they
# differ: a variant's build may run beside the default's (scripts/test),
# whose training reads them.
[ "$(cat "$out/python-src.path" 2>/dev/null)" = "$src" ] || echo "$src" >"$out/python-src.path"
[ "$(cat "$out/python-native.path" 2>/dev/null)" = "$native_py" ] ||
    echo "$native_py" >"$out/python-native.path"
if [ "$stop_after_stage1" = 1 ]; then
    echo "$out"
    exit 0
fi

# Stage 2: wasm2c and the C compiler, keyed by the module's bytes.
# The profiled build lays out each function's blocks with LLVM's ext-TSP
# model (from the profile's branch counts) instead of its default chain
# placement: 1.2-2.7 % on the benchmarks' geomean, ahead in all three runs
# (docs/performance.md, "Block placement by the ext-TSP model").
# A count is hot when it is among those making up 95 % of the profile's
# total, not LLVM's 99 %. Since the f-string lexer edit took libc's string
# loops (58 % of the counts) out of the training, 99 % made twice the code
# hot: the interpreter loop doubled (447 to 911 KB, its callees inlined at
# "hot" sites) and the suite ran 1.4-2.3 % slower; with 95 % the loop is 299 KB
# and runs as before. The profile summary holds only the 95 % and 99 %
# cutoffs near here: any value between them means 99 % (docs/performance.md,
# "Compiling f-strings in linear time").
# The final compile turns every conditional move into a branch
# (x86-cmov-converter-force-all). A cmov waits for its condition; a branch
# is predicted and lets the work after it start. LLVM's own converter
# keeps most of the generated code's cmovs, and the guest lost to native
# where gcc branches: a cmov on a loaded byte made CPython's substring
# search 5.2x native's time (1.2x with branches), and the suite ran 1.094x
# of native against 1.126x paired (docs/performance.md, "The guest's
# string scans").
final_flags=
case "$ERYX_GUEST_CC" in
    clang*) final_flags="-mllvm -x86-cmov-converter-force-all=true" ;;
esac
pgo_use_flags=
if [ "$ERYX_GUEST_PGO" = 1 ]; then
    pgo_use_flags="-mllvm -enable-ext-tsp-block-placement=1 -mllvm -profile-summary-cutoff-hot=950000"
fi
wkey=$( { sha256sum <"$out/guest.wasm"; wasm2c --version; echo "$ERYX_GUEST_CC $ERYX_GUEST_CFLAGS";
          echo "fuel=$ERYX_GUEST_FUEL segment=$ERYX_GUEST_SEGMENT pgo=$ERYX_GUEST_PGO $pgo_use_flags";
          echo "final: $final_flags";
          # The recipe of the profile: a change of it must change the key.
          if [ "$ERYX_GUEST_PGO" = 1 ]; then echo "context-sensitive"; fi;
          cat "$here"/w2c_*.h "$here/w2c_rewrite.sh" "$here/host_instance.h";
          if [ -n "$experiment" ]; then cat "$experiment"; fi;
          if [ "$ERYX_GUEST_SPLIT" != 0 ]; then echo "split=$ERYX_GUEST_SPLIT"; cat "$here/w2c_split.sh"; fi;
          # The profile depends on the training, not on the host code it
          # ran under: a profile is advice, a stale one still builds correct code.
          if [ "$ERYX_GUEST_PGO" = 1 ]; then cat "$here"/pgo_train.*; fi;
          "$ERYX_GUEST_CC" --version | head -n 1; cat /usr/include/wasm-rt.h; } | sha256sum | cut -c1-16)
w2c="$ERYX_CACHE_DIR/w2c-$wkey"
if [ ! -f "$w2c/stamp" ]; then
    rm -rf "$w2c.tmp" && mkdir -p "$w2c.tmp"
    t0=$(date +%s)
    log "wasm2c guest.wasm"
    wasm2c "$out/guest.wasm" -n python -o "$w2c.tmp/guest.c"
    # Hooks: guest/w2c_rewrite.sh (which is part of the key above).
    rewrite=("$here/w2c_rewrite.sh" "$w2c.tmp/guest.c")
    if [ "$ERYX_GUEST_FUEL" = 1 ]; then rewrite+=(--fuel); fi
    "${rewrite[@]}"
    if [ -n "$experiment" ]; then "$experiment" "$w2c.tmp/guest.c"; fi
    t1=$(date +%s)
    log "wasm2c: $(( t1 - t0 )) s; compiling guest.c with $ERYX_GUEST_CC $ERYX_GUEST_CFLAGS (a few minutes)"
    units=("$w2c.tmp/guest.c")
    if [ "$ERYX_GUEST_SPLIT" != 0 ]; then
        "$here/w2c_split.sh" "$w2c.tmp/guest.c" "$w2c.tmp/units" "$ERYX_GUEST_SPLIT"
        rm -f "$w2c.tmp/guest.c"
        units=("$w2c.tmp/units/guest-0.c" "$w2c.tmp/units/guest-1.c")
    fi
    compile_unit() {   # compile_unit SOURCE OUTPUT [extra flags...]
        local c=$1 o=$2
        shift 2
        # shellcheck disable=SC2086
        "$ERYX_GUEST_CC" $ERYX_GUEST_CFLAGS "$@" -fPIC -w -DERYX_W2C_SEGMENT="$ERYX_GUEST_SEGMENT" \
            -include "$here/w2c_hooks.h" -I"$here" -I"$w2c.tmp" -c "$c" -o "$o"
    }
    # compile OUTPUT [extra flags...]: every unit at once, each on a core,
    # linked into one relocatable object.
    compile() {
        local o=$1 u pid pids=() objs=() status=0
        shift
        if [ ${#units[@]} = 1 ]; then
            compile_unit "${units[0]}" "$o" "$@"
            return
        fi
        for u in "${units[@]}"; do
            compile_unit "$u" "${u%.c}.o" "$@" &
            pids+=($!) objs+=("${u%.c}.o")
        done
        for pid in "${pids[@]}"; do wait "$pid" || status=1; done
        [ $status = 0 ] || { log "compiling the generated C failed"; return 1; }
        ld -r -o "$o" "${objs[@]}"
        rm -f "${objs[@]}"
    }
    if [ "$ERYX_GUEST_PGO" = 1 ]; then
        case "$ERYX_GUEST_CC" in
            clang*) ;;
            *) log "ERYX_GUEST_PGO=1 needs clang (ERYX_GUEST_CC=$ERYX_GUEST_CC)"; exit 1 ;;
        esac
        log "PGO 1/5: instrumented build"
        compile "$w2c.tmp/guest-gen.o" -fprofile-generate
        log "PGO 2/5: training run (guest/pgo_train.py): $(( $(date +%s) - t1 )) s so far"
        "$here/pgo_train.sh" "$w2c.tmp/train" "$w2c.tmp/guest-gen.o" "$w2c.tmp/guest.h" \
            "$out" "$ERYX_GUEST_SEGMENT" "$w2c.tmp/guest.profdata"
        rm -f "$w2c.tmp/guest-gen.o"
        # Context-sensitive PGO: the code as optimised with that profile,
        # inlining done, is counted again by the same training, so that
        # each inlined copy of a function gets its own counts rather than
        # its callee's average (docs/performance.md, "Context-sensitive
        # profile").
        log "PGO 3/5: context-sensitive instrumented build: $(( $(date +%s) - t1 )) s so far"
        # shellcheck disable=SC2086
        compile "$w2c.tmp/guest-csgen.o" -fprofile-use="$w2c.tmp/guest.profdata" \
            -fcs-profile-generate $pgo_use_flags
        log "PGO 4/5: training run again: $(( $(date +%s) - t1 )) s so far"
        "$here/pgo_train.sh" "$w2c.tmp/train" "$w2c.tmp/guest-csgen.o" "$w2c.tmp/guest.h" \
            "$out" "$ERYX_GUEST_SEGMENT" "$w2c.tmp/cs.profdata"
        rm -f "$w2c.tmp/guest-csgen.o"
        "llvm-profdata-$ERYX_LLVM" merge -o "$w2c.tmp/guest-cs.profdata" \
            "$w2c.tmp/guest.profdata" "$w2c.tmp/cs.profdata"
        log "PGO 5/5: optimised build: $(( $(date +%s) - t1 )) s so far"
        # shellcheck disable=SC2086
        compile "$w2c.tmp/guest.o" -fprofile-use="$w2c.tmp/guest-cs.profdata" $pgo_use_flags \
            $final_flags
    else
        # shellcheck disable=SC2086
        compile "$w2c.tmp/guest.o" $final_flags
    fi
    log "compile: $(( $(date +%s) - t1 )) s"
    rm -rf "$w2c.tmp/guest.c" "$w2c.tmp/units"   # 110 MB; the object is what we keep
    touch "$w2c.tmp/stamp"
    rm -rf "$w2c" && mv "$w2c.tmp" "$w2c"
fi
# Variants share stage 1 but get a directory of their own.
final=$out
[ "$ERYX_GUEST_FUEL" = 1 ] && final=$final-fuel
[ "$ERYX_GUEST_SEGMENT" = 1 ] || final=$final-noseg
[ "$ERYX_GUEST_PGO" = "$pgo_default" ] || final=$final-pgo$ERYX_GUEST_PGO
[ "$ERYX_GUEST_CC $ERYX_GUEST_CFLAGS" = "$default_cc" ] ||
    final=$final-cc$(echo "$ERYX_GUEST_CC $ERYX_GUEST_CFLAGS" | sha256sum | cut -c1-8)
[ "$ERYX_GUEST_SPLIT" = "$split_default" ] || final=$final-split$ERYX_GUEST_SPLIT
[ -z "$experiment" ] || final=$final-x$(sha256sum <"$experiment" | cut -c1-8)
if [ "$final" != "$out" ]; then
    mkdir -p "$final"
    for f in stdlib.img guest.wasm python-src.path python-native.path; do
        ln -sfn "$out/$f" "$final/$f"
    done
fi
echo "$ERYX_GUEST_FUEL" >"$final/fuel"
echo "$ERYX_GUEST_SEGMENT" >"$final/segment"
echo "$ERYX_GUEST_CC $ERYX_GUEST_CFLAGS (PGO $([ "$ERYX_GUEST_PGO" = 1 ] && echo on || echo off), \
%gs segment $([ "$ERYX_GUEST_SEGMENT" = 1 ] && echo on || echo off), \
fuel $([ "$ERYX_GUEST_FUEL" = 1 ] && echo on || echo off))" >"$final/config"
# Pointed at another compile (a lever tried, then left: the same module,
# a cached object older than the programs linked with the other one), the
# links' targets are touched, so that make, which dates a link by its
# target, relinks them rather than keep the other object.
if [ "$(readlink "$final/guest.o" || true)" != "$w2c/guest.o" ]; then
    touch "$w2c/guest.h" "$w2c/guest.o"
fi
ln -sfn "$w2c/guest.h" "$final/guest.h"
ln -sfn "$w2c/guest.o" "$final/guest.o"

# The cache keeps the six most recently used builds of each stage: every
# edit of the _eryx package makes a new guest-* (28 MB) directory.
touch "$out" "$final" "$w2c"
for kind in guest w2c; do
    ls -dt "$ERYX_CACHE_DIR/$kind"-* 2>/dev/null | grep -v '\.tmp$' | tail -n +7 | xargs -r rm -rf
done
echo "$final"
