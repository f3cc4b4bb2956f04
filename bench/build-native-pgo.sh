#!/usr/bin/env bash
# Builds the benchmark's baseline: native CPython from the same Debian source
# tarball as the guest, configured as distributions and python.org ship it
# (--enable-optimizations --with-lto: gcc PGO trained on CPython's own
# `-m test --pgo` task, then LTO). Cached under $ERYX_CACHE_DIR keyed by the
# source version, the compiler and this script, like the guest's stages; the
# guest build's plain -O3 "build python" stays the extra column.
# Takes 20-40 minutes on 2 cores; runs niced. Prints the python's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/env.sh"

tarball=$("$here/../scripts/fetch-sources.sh" | tail -n 1)
cc=${CC:-gcc}
key=$( { echo "$ERYX_PY_DEB_VERSION"; "$cc" --version | head -n 1; cat "$0"; } |
       sha256sum | cut -c1-16)
top="$ERYX_CACHE_DIR/native-pgo-$ERYX_PY_VERSION-$key"
jobs=${ERYX_BENCH_JOBS:-2}
log() { echo "build-native-pgo: $*" >&2; }

if [ ! -f "$top/stamp" ]; then
    t0=$(date +%s)
    log "building native CPython with PGO and LTO into $top (20-40 min)"
    rm -rf "$top" "$top.tmp" && mkdir -p "$top.tmp/src"
    tar -C "$top.tmp/src" --strip-components=1 -xf "$tarball"
    mkdir -p "$top.tmp/build"
    (cd "$top.tmp/build" &&
        CC="$cc" nice -n 10 ../src/configure -q --enable-optimizations --with-lto \
            --prefix="$top/install" >configure.log 2>&1 &&
        nice -n 10 make -j"$jobs" >make.log 2>&1) ||
        { log "failed: see $top.tmp/build/make.log"; exit 1; }
    # The sources are not needed to run (the build tree finds Lib/ through
    # pybuilddir and the src symlink below); the object files are.
    mv "$top.tmp" "$top"
    echo "$(( $(date +%s) - t0 ))" >"$top/build-seconds"
    touch "$top/stamp"
    log "done in $(cat "$top/build-seconds") s"
fi
echo "$top/build/python"
