# Recipe: zlib (Debian source package "zlib") as a static library, with its
# zlib.pc for CPython's configure. Sourced by guest/clibs/build.sh (the
# variables it sets are described there).
# zlib's own configure cross-compiles with any compiler; --static leaves out
# the shared library, which a statically linked guest has no use for.
cp -a "$SRC/." "$BUILD"
cd "$BUILD"
CHOST=wasm32 CC="$WASI_CC" AR="$WASI_AR" RANLIB="$WASI_RANLIB" CFLAGS="$WASI_CFLAGS" \
    ./configure --static --prefix="$PREFIX" >configure.log 2>&1
make -j"$JOBS" libz.a >make.log 2>&1
make install >>make.log 2>&1
