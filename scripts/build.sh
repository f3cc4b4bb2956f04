#!/usr/bin/env bash
# Builds whatever is missing: apt packages, the guest (cached outside the tree
# in $ERYX_CACHE_DIR), then liberyx, the CLI and the tests with CMake.
# usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]   (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
guest_dir=$("$root/guest/build.sh" | tail -n 1)
if [ ! -f "$build/CMakeCache.txt" ] || ! grep -q "ERYX_GUEST_DIR:PATH=$guest_dir\$" "$build/CMakeCache.txt"; then
    cmake -S "$root" -B "$build" -DERYX_GUEST_DIR="$guest_dir" "$@" >/dev/null
fi
cmake --build "$build" -j"$(nproc)" >&2
