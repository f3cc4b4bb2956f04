#!/usr/bin/env bash
# The libFuzzer build (docs/fuzzing.md): host code with clang, ASan, UBSan
# and coverage, the cached guest linked as it is, only the fuzz harnesses.
# usage: scripts/build-fuzz.sh [BUILD_DIR]   (default: build-fuzz)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/env.sh"
build=${1:-$root/build-fuzz}
# guest/build.sh installs what is missing, clang-$ERYX_LLVM and its
# libclang-rt (libFuzzer, the sanitizers) included.
guest_dir=$("$root/guest/build.sh" | tail -n 1)
clang=$(command -v "clang-$ERYX_LLVM")
if [ ! -f "$build/CMakeCache.txt" ] || ! grep -q "ERYX_GUEST_DIR:PATH=$guest_dir\$" "$build/CMakeCache.txt"; then
    cmake -S "$root" -B "$build" -DERYX_GUEST_DIR="$guest_dir" -DERYX_FUZZ=ON \
        -DCMAKE_C_COMPILER="$clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target eryx_fuzzers >&2
