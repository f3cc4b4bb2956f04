#!/usr/bin/env bash
# Builds CPython twice from the Debian source tarball, edited by
# guest/patch-cpython.py:
#   native/  the "build python" (needed to cross-build, and our native baseline)
#   wasi/    CPython for wasm32-wasip1, as static libraries we link into the guest
# Each stage is cached under $ERYX_CACHE_DIR keyed by a hash of its inputs.
# The WASI build links the C libraries of guest/clibs/list (zlib, bzip2,
# xz, SQLite: guest/clibs/build.sh builds them) and finds the time zone
# database in the standard-library image (guest/build.sh packs it).
# Prints the wasi build directory on success.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/env.sh"

tarball=$("$here/../scripts/fetch-sources.sh" | tail -n 1)
sysroot="$ERYX_CACHE_DIR/sysroot-$ERYX_WASI_LIBC_DEB"
key=$( { echo "$ERYX_PY_DEB_VERSION $ERYX_WASI_LIBC_DEB $ERYX_LLVM $ERYX_LLVM_SRC_DEB $ERYX_GUEST_TZPATH";
         cat "$0" "$here/patch-cpython.py";
         # The WASI build's profile-guided optimisation and its training.
         cat "$here/wasm_pgo.sh" "$here/wasm_lto.mk" "$here/pgo_train_wasm.mjs" "$here/pgo_train.py";
         cd "$here/clibs" && for f in $(LC_ALL=C ls); do echo "$f"; cat "$f"; done; } |
       sha256sum | cut -c1-16)
top="$ERYX_CACHE_DIR/python-$ERYX_PY_VERSION-$key"
jobs=$(nproc)
log() { echo "build-python: $*" >&2; }

mkdir -p "$top"
if [ ! -f "$top/src.stamp" ]; then
    log "unpacking $(basename "$tarball")"
    rm -rf "$top/src" && mkdir -p "$top/src"
    tar -C "$top/src" --strip-components=1 -xf "$tarball"
    # The guest's few edits to CPython (guest/patch-cpython.py says why);
    # the native build python compiles them too, where they change nothing.
    python3 "$here/patch-cpython.py" "$top/src"
    touch "$top/src.stamp"
fi
src="$top/src"

# A wasi-sdk shaped directory over Debian's clang/lld and the wasi-libc sysroot,
# which is the layout CPython's configure expects for the WASI build.
sdk="$top/wasi-sdk"
if [ ! -f "$sdk/stamp" ]; then
    mkdir -p "$sdk/bin" "$sdk/share"
    ln -sfn "$sysroot" "$sdk/share/wasi-sysroot"
    for t in clang clang++ clang-cpp; do
        drv=clang-$ERYX_LLVM; [ "$t" = clang++ ] && drv=clang++-$ERYX_LLVM
        extra=""; [ "$t" = clang-cpp ] && extra="-E"
        printf '#!/bin/sh\nexec %s --target=wasm32-wasip1 --sysroot=%s %s "$@"\n' \
            "$drv" "$sysroot" "$extra" >"$sdk/bin/$t"
        chmod +x "$sdk/bin/$t"
    done
    for t in ar ranlib nm strip; do ln -sfn "$(command -v llvm-$t-$ERYX_LLVM)" "$sdk/bin/llvm-$t"; done
    ln -sfn "$(command -v llvm-ar-$ERYX_LLVM)" "$sdk/bin/ar"
    ln -sfn "$(command -v llvm-ranlib-$ERYX_LLVM)" "$sdk/bin/ranlib"
    ln -sfn "$(command -v wasm-ld-$ERYX_LLVM)" "$sdk/bin/wasm-ld"
    touch "$sdk/stamp"
fi

native="$top/native"
if [ ! -f "$native/stamp" ]; then
    log "configuring and building the native build python (a few minutes)"
    t0=$(date +%s)
    rm -rf "$native" && mkdir -p "$native"
    (cd "$native" && "$src/configure" -q --prefix="$native/install" >configure.log 2>&1 &&
        make -s -j"$jobs" all >make.log 2>&1)
    touch "$native/stamp"
    log "native build python: $(( $(date +%s) - t0 )) s"
fi

# The guest's C libraries, each a cache stage of its own: "NAME PREFIX MODULES".
clibs=$("$here/clibs/build.sh" "$sdk")
pc_dirs="$sysroot/lib/pkgconfig"
while read -r _ prefix _; do pc_dirs="$pc_dirs:$prefix/lib/pkgconfig"; done <<<"$clibs"

wasi="$top/wasi"
if [ ! -f "$wasi/stamp" ]; then
    log "configuring and building CPython for wasm32-wasip1 (a few minutes)"
    t0=$(date +%s)
    rm -rf "$wasi" && mkdir -p "$wasi"
    # make runs the freshly built python.wasm a few times (sysconfig data):
    # Node's WASI is the host runner available from Debian.
    cat >"$wasi/hostrunner.sh" <<RUN
#!/bin/sh
exec node --no-warnings --stack-size=4000 "$here/node-wasi-runner.mjs" "$src" "\$@"
RUN
    chmod +x "$wasi/hostrunner.sh"
    # configure must be called by a relative path for the build tree to be found.
    # --with-pymalloc: configure leaves CPython's small-object allocator out
    # on WASI (a browser-size default), and every object then costs a
    # dlmalloc call and free; with it, as natively, allocation-heavy code
    # runs faster (docs/performance.md, "pymalloc").
    # -fno-wrapv-pointer: CPython compiles with -fno-strict-overflow, which
    # in clang also lets pointer arithmetic wrap. Natively that costs
    # nothing (an x86 address adds in 64 bits either way), but in wasm a
    # field's offset can only be folded into the load or store when the
    # addition cannot wrap: every p->field became an i32.add and a load, an
    # extra instruction in the generated C (docs/performance.md, "Pointer
    # arithmetic"). Signed integers keep wrapping (-fwrapv), as natively.
    (cd "$wasi" &&
        CONFIG_SITE="$src/Tools/wasm/config.site-wasm32-wasi" \
        HOSTRUNNER="$wasi/hostrunner.sh" \
        CC="$sdk/bin/clang" CPP="$sdk/bin/clang-cpp" CXX="$sdk/bin/clang++" \
        CFLAGS="-fno-wrapv-pointer" \
        AR="$sdk/bin/ar" RANLIB="$sdk/bin/ranlib" \
        PKG_CONFIG_PATH="" PKG_CONFIG_LIBDIR="$pc_dirs" \
        "$(realpath --relative-to="$wasi" "$src")/configure" -q \
            --host=wasm32-wasip1 --build="$(uname -m)-pc-linux-gnu" \
            --with-build-python="$native/python" \
            --with-pymalloc \
            --with-tzpath="$ERYX_GUEST_TZPATH" >configure.log 2>&1)
    # Every module the list promises must have been found by configure.
    for mod in $(cut -d' ' -f3 <<<"$clibs" | tr ',' ' '); do
        var=MODULE_$(tr '[:lower:]' '[:upper:]' <<<"$mod")_STATE
        state=$(sed -n "s/^$var=//p" "$wasi/Makefile")
        if [ "$state" != yes ]; then
            log "configure did not enable $mod ($var=$state): see $wasi/config.log"
            exit 1
        fi
    done
    # Built as native CPython is, with profile-guided optimisation:
    # instrumented, trained, built again (guest/wasm_pgo.sh).
    "$here/wasm_pgo.sh" "$top"
    touch "$wasi/stamp"
    log "wasi python: $(( $(date +%s) - t0 )) s"
fi
# The three most recently used CPython trees stay (each ~550 MB); older
# ones belong to builds nobody runs any more.
touch "$top"
ls -dt "$ERYX_CACHE_DIR/python-$ERYX_PY_VERSION"-* 2>/dev/null | grep -v '\.tmp$' | tail -n +4 | xargs -r rm -rf
echo "$top"
