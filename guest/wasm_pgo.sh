#!/usr/bin/env bash
# Builds CPython for wasm32-wasip1 with profile-guided optimisation, as
# native CPython is built (./configure --enable-optimizations): compiled
# instrumented, trained, compiled again with the profile. Without it the
# compile to wasm decides its inlining blind, and what it leaves as calls
# (l_mod in long_mod, ...) keeps its shadow-stack frames and linear-memory
# arguments whatever the later, profiled compile of wasm2c's C does
# (docs/performance.md, "A profile for the wasm-stage compile").
#
# usage: guest/wasm_pgo.sh TOP
# TOP is guest/build-python.sh's stage: TOP/wasi configured for the WASI
# build, TOP/src, TOP/native/python, TOP/wasi-sdk. Leaves TOP/wasi built.
#
# 1. compiler-rt's profile runtime for wasm32-wasip1 (Debian ships clang's
#    runtimes for wasm32 without it), from the upstream tarball of Debian's
#    llvm-toolchain-$ERYX_LLVM: a cache stage of its own, in a copy of
#    clang's resource directory, where the driver looks for it;
# 2. the WASI build, instrumented (-fprofile-generate);
# 3. its python.wasm under Node's WASI running the guest's two trainings
#    (guest/pgo_train.sh's): guest/pgo_train.py, and CPython's PGO task
#    less test_datetime, which blocks under Node;
# 4. the WASI build again, with that profile, the interpreter's hot files
#    compiled to bitcode that the link optimises across files (ThinLTO:
#    guest/wasm_lto.mk says which and why).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/env.sh"
top=$1
wasi="$top/wasi" sdk="$top/wasi-sdk"
log() { echo "wasm_pgo: $*" >&2; }

# 1. The runtime.
rtkey=$( { echo "$ERYX_LLVM_SRC_DEB"; "$sdk/bin/clang" --version | head -n 1;
           sed -n '/^# 1\. The runtime/,/^# 2\./p' "$0"; } | sha256sum | cut -c1-16)
rt="$ERYX_CACHE_DIR/wasm-profile-rt-$rtkey"
if [ ! -f "$rt/stamp" ]; then
    tarball=$("$here/../scripts/fetch-sources.sh" --orig "llvm-toolchain-$ERYX_LLVM=$ERYX_LLVM_SRC_DEB" | tail -n 1)
    log "compiler-rt's profile runtime for wasm32-wasip1"
    rm -rf "$rt.tmp" && mkdir -p "$rt.tmp/src"
    tar -xf "$tarball" -C "$rt.tmp/src" --strip-components=1 --wildcards \
        '*/compiler-rt/lib/profile/*' '*/compiler-rt/include/profile/*'
    prof="$rt.tmp/src/compiler-rt/lib/profile"
    # The sources compiler-rt's CMakeLists.txt builds for WASI, with its flags.
    for f in InstrProfiling InstrProfilingInternal InstrProfilingBuffer InstrProfilingMerge \
             InstrProfilingMergeFile InstrProfilingNameVar InstrProfilingVersionVar \
             InstrProfilingWriter InstrProfilingPlatformLinux InstrProfilingPlatformOther \
             InstrProfilingFile InstrProfilingUtil InstrProfilingValue; do
        "$sdk/bin/clang" -O2 -w -D_WASI_EMULATED_MMAN -D_WASI_EMULATED_GETPID \
            -I"$prof/.." -I"$prof/../../include" -c "$prof/$f.c" -o "$rt.tmp/$f.o"
    done
    "$sdk/bin/clang++" -O2 -w -fno-exceptions -fno-rtti -nostdinc++ -I"$prof/.." \
        -c "$prof/InstrProfilingRuntime.cpp" -o "$rt.tmp/InstrProfilingRuntime.o"
    resource=$("clang-$ERYX_LLVM" -print-resource-dir)
    mkdir -p "$rt.tmp/resource/lib/wasm32-unknown-wasip1"
    ln -s "$resource/include" "$rt.tmp/resource/include"
    ln -s "$resource/lib/wasi" "$rt.tmp/resource/lib/wasi"
    "$sdk/bin/ar" rcs "$rt.tmp/resource/lib/wasm32-unknown-wasip1/libclang_rt.profile.a" "$rt.tmp"/*.o
    rm -rf "$rt.tmp/src" "$rt.tmp"/*.o
    touch "$rt.tmp/stamp"
    rm -rf "$rt" && mv "$rt.tmp" "$rt"
fi
# 2. Instrumented.

build() {   # build LOG [make arguments]
    local logf=$1
    shift
    (cd "$wasi" && make -s clean >/dev/null 2>&1 && make -s -j"$(nproc)" "$@" all >"$logf" 2>&1) ||
        { log "make failed: see $logf"; exit 1; }
}
log "the WASI build, instrumented"
build "$wasi/make-generate.log" \
    CFLAGS_NODIST="-resource-dir=$rt/resource -fprofile-generate" \
    LDFLAGS_NODIST="-resource-dir=$rt/resource -fprofile-generate -lwasi-emulated-mman -lwasi-emulated-getpid"

# 3. The training. The guest's script has top-level await, which eryx runs;
# here an event loop without the self-pipe WASI cannot make runs it.
log "training under Node"
train="$wasi/pgo-train"
rm -rf "$train" && mkdir -p "$train/profiles" "$train/tmp"
cat >"$train/shim.py" <<'PY'
import ast, asyncio, sys
class Loop(asyncio.SelectorEventLoop):
    def _make_self_pipe(self): pass
    def _close_self_pipe(self): pass
    def _write_to_self(self): pass
path = sys.argv[1]
code = compile(open(path).read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__", "__file__": path})
if asyncio.iscoroutine(result):
    Loop().run_until_complete(result)
PY
buildlib=$(ls -d "$wasi/build/lib.wasi-wasm32-"*)
train_run() {   # train_run NAME [python args...]
    local name=$1
    shift
    # Node may crash at its own exit after the profile is written; a run
    # that wrote none failed.
    timeout 1800 node --no-warnings --stack-size=4000 "$here/pgo_train_wasm.mjs" \
        "$wasi/python.wasm" "$top/src/Lib" "$buildlib" "$train/profiles/$name.profraw" \
        --map "$here:/guest" --map "$train:/train" --map "$train/tmp:/tmp" "$@" \
        </dev/null >"$train/$name.log" 2>&1 || true
    if [ ! -s "$train/profiles/$name.profraw" ]; then
        log "the $name training wrote no profile:"
        tail -n 20 "$train/$name.log" >&2
        exit 1
    fi
}
train_run script /train/shim.py /guest/pgo_train.py
tests=$("$top/native/python" -c 'import sys; sys.path.insert(0, sys.argv[1])
from test.libregrtest.pgo import PGO_TESTS
print(" ".join(t for t in PGO_TESTS if t != "test_datetime"))' "$top/src/Lib")
# shellcheck disable=SC2086
train_run regrtest -m test --pgo --tempdir=/tmp/regrtest $tests
"llvm-profdata-$ERYX_LLVM" merge -o "$wasi/python.profdata" "$train/profiles"/*.profraw
rm -rf "$train"

# 4. With the profile.
log "the WASI build with the profile"
build "$wasi/make.log" -f Makefile -f "$here/wasm_lto.mk" \
    LDFLAGS_NODIST="-Wl,--thinlto-cache-dir=$wasi/thinlto-cache" \
    CFLAGS_NODIST="-fprofile-use=$wasi/python.profdata -Wno-profile-instr-unprofiled -Wno-profile-instr-out-of-date"
