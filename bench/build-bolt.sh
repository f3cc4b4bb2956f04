#!/usr/bin/env bash
# Builds a CLI laid out again by LLVM's BOLT from a profile of the guest's
# PGO training, for measuring that lever against the default CLI
# (docs/performance.md, "Levers measured and not taken"). Not part of the
# build: the lever was measured and not taken.
#
# Steps: the CLI linked with --emit-relocs (BOLT needs the relocations to
# move functions), instrumented by llvm-bolt, run on the guest's two training
# workloads (guest/pgo_train.py and CPython's `-m test --pgo` task, as
# guest/pgo_train.sh runs them: never the benchmark kernels), then rewritten
# with the merged profile.
#
# usage: bench/build-bolt.sh WORK_DIR     prints the path of the BOLTed CLI
# (WORK_DIR/bolt/eryx; WORK_DIR/base/eryx is the same link without BOLT, the
# fair baseline: --emit-relocs alone changes nothing the code does).
# Needs bolt-$ERYX_LLVM (llvm-bolt-NN, merge-fdata) from apt.llvm.org's
# Debian packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/env.sh"
[ $# -eq 1 ] || { echo "usage: bench/build-bolt.sh WORK_DIR" >&2; exit 2; }
work=$1
bolt=llvm-bolt-$ERYX_LLVM
merge=/usr/lib/llvm-$ERYX_LLVM/bin/merge-fdata
command -v "$bolt" >/dev/null && [ -x "$merge" ] ||
    { echo "build-bolt.sh: needs $bolt and $merge (apt-get install bolt-$ERYX_LLVM)" >&2; exit 1; }

guest_dir=$("$root/guest/build.sh" | tail -n 1)
mkdir -p "$work/base" "$work/bolt" "$work/profiles"
cmake -S "$root" -B "$work/build" -DERYX_GUEST_DIR="$guest_dir" \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--emit-relocs >/dev/null
cmake --build "$work/build" -j"$(nproc)" --target eryx_cli >/dev/null
cp "$work/build/bin/eryx" "$work/base/eryx"

rm -f "$work/profiles"/*.fdata
"$bolt" "$work/base/eryx" -o "$work/eryx.instrumented" -instrument \
        --instrumentation-file="$work/profiles/prof" --instrumentation-file-append-pid >/dev/null 2>&1
"$work/eryx.instrumented" --timeout 0 "$root/guest/pgo_train.py" >&2
"$work/eryx.instrumented" --timeout 0 --max-memory 1G \
    --mount "$(cat "$guest_dir/python-src.path")/Lib/test:/pgo/test" \
    "$root/guest/pgo_train_regrtest.py" >/dev/null 2>&1
"$merge" "$work/profiles"/*.fdata >"$work/merged.fdata"

# The interpreter loop is left as it is: its dispatch through a table of
# label addresses is an indirect branch BOLT cannot follow ("failed to
# post-process indirect branches"), so it skips that function.
"$bolt" "$work/base/eryx" -o "$work/bolt/eryx" -data="$work/merged.fdata" \
        -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions \
        -split-all-cold -split-eh -icf=1 -use-gnu-stack -dyno-stats >"$work/bolt.log" 2>&1
echo "$work/bolt/eryx"
