# Recipe: libbz2 from the Debian source package "bzip2", static. Sourced by
# guest/clibs/build.sh (the variables it sets are described there).
# Its Makefile has no configure step; only libbz2.a is built (the bzip2
# command and the shared library are not wanted). Upstream ships no
# pkg-config file: one is written, which is what CPython's configure asks
# for first.
cp -a "$SRC/." "$BUILD"
cd "$BUILD"
make -j"$JOBS" CC="$WASI_CC" AR="$WASI_AR" RANLIB="$WASI_RANLIB" \
    CFLAGS="$WASI_CFLAGS -D_FILE_OFFSET_BITS=64" libbz2.a >make.log 2>&1
mkdir -p "$PREFIX/include" "$PREFIX/lib/pkgconfig"
cp bzlib.h "$PREFIX/include/"
cp libbz2.a "$PREFIX/lib/"
version=$(sed -n 's/^bzip2\/libbzip2 version \([0-9.]*\) .*/\1/p' README | head -n 1)
cat >"$PREFIX/lib/pkgconfig/bzip2.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: bzip2
Description: block-sorting data compression library
Version: $version
Libs: -L\${libdir} -lbz2
Cflags: -I\${includedir}
PC
