# Recipe: liblzma from the Debian source package "xz-utils", static.
# Sourced by guest/clibs/build.sh (the variables it sets are described there).
# Only the library: the xz, xzdec, lzmadec and lzmainfo commands, the
# scripts, translations and documentation are turned off; no threads
# (wasm32-wasip1 has none). liblzma.pc is installed for CPython's configure.
cd "$BUILD"
"$SRC/configure" --host=wasm32-unknown-wasi --build="$(uname -m)-pc-linux-gnu" \
    --prefix="$PREFIX" --enable-static --disable-shared --disable-threads \
    --disable-xz --disable-xzdec --disable-lzmadec --disable-lzmainfo \
    --disable-lzma-links --disable-scripts --disable-doc --disable-nls \
    CC="$WASI_CC" AR="$WASI_AR" RANLIB="$WASI_RANLIB" CFLAGS="$WASI_CFLAGS" \
    >configure.log 2>&1
make -j"$JOBS" -C src/liblzma >make.log 2>&1
make -C src/liblzma install >>make.log 2>&1
