#!/usr/bin/env bash
# Builds the C libraries of guest/clibs/list for wasm32-wasip1, each in a
# cache stage of its own, and prints one line per library:
#   NAME PREFIX MODULES
# (PREFIX holds include/, lib/ and lib/pkgconfig/). Run by
# guest/build-python.sh, which points CPython's configure at the prefixes.
# usage: build.sh WASI_SDK_DIR
#
# Each recipe, guest/clibs/NAME.sh, is sourced by bash -euo pipefail in a
# fresh directory with:
#   SRC          the unpacked Debian source package (Debian's patches
#                applied); shared by every build: copy it before writing
#   BUILD        an empty directory to build in (the current directory)
#   PREFIX       where to install headers, lib*.a and lib/pkgconfig/*.pc
#   RECIPES      this directory (for files of our own a recipe compiles)
#   WASI_CC, WASI_AR, WASI_RANLIB, WASI_CFLAGS   the cross toolchain
#   JOBS         how many jobs make may run
# CC, CFLAGS and the other usual variables are unset, so a recipe that
# builds a tool for the build machine gets the native compiler.
#
# The stage key is made of what the library is built from, never of where:
# its line of the list, its files here (NAME.sh, NAME-*), this script, the
# compiler's version and the WASI sysroot's version. The install prefix
# contains that key, so .pc files name a fixed path per key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/env.sh"
sdk=$1
jobs=$(nproc)
log() { echo "clibs: $*" >&2; }

sed -e 's/#.*//' "$here/list" | while read -r name source modules; do
    [ -n "$name" ] || continue
    key=$( { echo "$name $source $modules $ERYX_WASI_LIBC_DEB"; "$sdk/bin/clang" --version | head -n 1;
             cat "$0"; cd "$here" && for f in "$name".sh "$name"-*; do
                 [ -e "$f" ] && echo "$f" && cat "$f"; done; true; } | sha256sum | cut -c1-16)
    out="$ERYX_CACHE_DIR/clib-$name-$key"
    if [ ! -f "$out/stamp" ]; then
        src=$("$here/../../scripts/fetch-sources.sh" --source "$source" | tail -n 1)
        log "building $name ($source) for wasm32-wasip1"
        t0=$(date +%s)
        rm -rf "$out.tmp" && mkdir -p "$out.tmp/build"
        # The prefix is the final directory; nothing is written there before
        # the recipe succeeded and the stage is renamed into place.
        if ! (cd "$out.tmp/build" &&
              env -u CC -u CXX -u CPP -u AR -u RANLIB -u CFLAGS -u CPPFLAGS -u LDFLAGS \
                  -u PKG_CONFIG_PATH -u PKG_CONFIG_LIBDIR \
                  SRC="$src" BUILD="$out.tmp/build" PREFIX="$out.tmp/prefix" RECIPES="$here" \
                  WASI_CC="$sdk/bin/clang" WASI_AR="$sdk/bin/ar" WASI_RANLIB="$sdk/bin/ranlib" \
                  WASI_CFLAGS="-O2 -DNDEBUG -ffile-prefix-map=$src=/eryx-src/$name -ffile-prefix-map=$out.tmp=/eryx-cache/clib-$name" \
                  JOBS="$jobs" bash -euo pipefail "$here/$name.sh"); then
            log "$name: the recipe failed; logs in $out.tmp/build"
            exit 1
        fi
        # libtool archives and manual pages are not needed; .pc files name
        # the prefix: the final directory's.
        find "$out.tmp/prefix" -name '*.la' -delete
        rm -rf "$out.tmp/prefix/share"
        find "$out.tmp/prefix" -name '*.pc' -exec sed -i "s|$out.tmp/prefix|$out/prefix|g" {} +
        rm -rf "$out.tmp/build"
        touch "$out.tmp/stamp"
        rm -rf "$out" && mv "$out.tmp" "$out"
        log "$name: $(( $(date +%s) - t0 )) s"
    fi
    touch "$out"
    # Keep the six most recently used builds of each library.
    ls -dt "$ERYX_CACHE_DIR/clib-$name"-* 2>/dev/null | grep -v '\.tmp$' | tail -n +7 | xargs -r rm -rf
    echo "$name $out/prefix $modules"
done
