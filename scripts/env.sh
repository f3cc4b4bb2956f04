# Build variables shared by every script. Sourced, not run.
# The guest CPython version is one variable: change it here (and the Debian
# source package that serves it) and everything downstream is rebuilt, because
# every cache key includes these values.
ERYX_PY_VERSION=${ERYX_PY_VERSION:-3.13}
ERYX_PY_DEB_VERSION=${ERYX_PY_DEB_VERSION:-3.13.5-2+deb13u5}
ERYX_PY_SUITE=${ERYX_PY_SUITE:-trixie}
ERYX_WASI_LIBC_DEB=${ERYX_WASI_LIBC_DEB:-0.0~git20260423.161b319-2}
ERYX_LLVM=${ERYX_LLVM:-22}
# The LLVM source whose compiler-rt gives the guest's CPython build its
# profile runtime for wasm32 (guest/wasm_pgo.sh): the release of clang-22;
# only its upstream tarball is used.
ERYX_LLVM_SRC_DEB=${ERYX_LLVM_SRC_DEB:-1:22.1.8-1~deb13u5}
# The time zone database packed into the standard-library image: Debian's
# tzdata and tzdata-legacy binary packages (sid, like wasi-libc), and the
# guest directory CPython's zoneinfo looks in (its TZPATH; inside the image,
# never a host directory). docs/batteries.md.
ERYX_TZDATA_DEB=${ERYX_TZDATA_DEB:-2026f-1}
ERYX_GUEST_TZPATH=/usr/lib/python$ERYX_PY_VERSION/zoneinfo-data
ERYX_CACHE_DIR=${ERYX_CACHE_DIR:-$HOME/.cache/eryx}
export ERYX_PY_VERSION ERYX_PY_DEB_VERSION ERYX_PY_SUITE ERYX_WASI_LIBC_DEB ERYX_LLVM ERYX_CACHE_DIR
export ERYX_LLVM_SRC_DEB
export ERYX_TZDATA_DEB ERYX_GUEST_TZPATH
