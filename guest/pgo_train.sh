#!/usr/bin/env bash
# Profile-guided optimisation of the guest, steps 2 and 4 of 5 (guest/build.sh
# does the compiles around them): links the CLI against an instrumented guest
# object (the first instrumented build, then the context-sensitive one), runs
# the training workload (guest/pgo_train.py) in it and merges the profile.
# usage: guest/pgo_train.sh WORK_DIR GUEST_O GUEST_H STAGE1_DIR SEGMENT OUT.profdata
# WORK_DIR is scratch space (a temporary guest directory and CMake build);
# STAGE1_DIR is guest/build.sh's stage 1 output (stdlib.img, *.path).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$root/scripts/env.sh"
work=$1 guest_o=$2 guest_h=$3 stage1=$4 segment=$5 out=$6

rm -rf "$work" && mkdir -p "$work/guest" "$work/profiles"
ln -s "$guest_o" "$work/guest/guest.o"
ln -s "$guest_h" "$work/guest/guest.h"
for f in stdlib.img python-src.path python-native.path; do
    ln -s "$stage1/$f" "$work/guest/$f"
done
echo 0 >"$work/guest/fuel"
echo "$segment" >"$work/guest/segment"

# The instrumented code calls into clang's profile runtime; the host code is
# linked by the usual compiler, so the runtime is named explicitly and its
# initialiser (which writes the profile at exit) pulled in by hand, as the
# clang driver would.
profile_rt=$("clang-$ERYX_LLVM" -print-file-name=libclang_rt.profile-x86_64.a)
[ -f "$profile_rt" ] || { echo "pgo_train.sh: no $profile_rt (libclang-rt-$ERYX_LLVM-dev)" >&2; exit 1; }
# The host code is built as by scripts/build.sh (its optimisation level does
# not matter to the guest's profile): -Werror at another level meets other
# warnings, which a fresh machine's build would be the first to see.
cmake -S "$root" -B "$work/build" -DERYX_GUEST_DIR="$work/guest" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_STANDARD_LIBRARIES="$profile_rt" \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,-u,__llvm_profile_runtime >/dev/null
cmake --build "$work/build" -j"$(nproc)" --target eryx_cli >/dev/null

LLVM_PROFILE_FILE="$work/profiles/%p.profraw" \
    "$work/build/bin/eryx" --timeout 0 "$here/pgo_train.py" >&2
# CPython's own PGO task (`-m test --pgo`), as native builds train: its tests
# from the source tree, which the stdlib image does not ship.
LLVM_PROFILE_FILE="$work/profiles/%p.profraw" \
    "$work/build/bin/eryx" --timeout 0 --max-memory 1G \
    --mount "$(cat "$stage1/python-src.path")/Lib/test:/pgo/test" \
    "$here/pgo_train_regrtest.py" >&2
"llvm-profdata-$ERYX_LLVM" merge -o "$out" "$work/profiles"/*.profraw
rm -rf "$work"
