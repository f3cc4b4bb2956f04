# Recipe: SQLite from the Debian source package "sqlite3" (the canonical
# source tree with Debian's patches, security fixes among them), static.
# Sourced by guest/clibs/build.sh (the variables it sets are described there).
#
# The tree's own tools (lemon, mkkeywordhash, Tcl scripts) make the
# amalgamation, sqlite3.c: they are built for and run on the build machine
# (tclsh is needed), so that step is configured with the native compiler.
# sqlite3.c is then compiled for wasm32-wasip1 with the options below,
# chosen for WASI (docs/batteries.md explains each):
#   WAL, loadable extensions and threads are off (sqlite3.h turns them off
#   for __wasi__: no shared memory, no dlopen, no threads);
#   SQLITE_DEFAULT_UNIX_VFS="unix-none": no file locking by default (WASI
#   has no fcntl locks; dot-file locks would outlive a sandbox stopped in
#   the middle of a write). "unix-dotfile" stays available by URI (?vfs=).
#   SQLITE_MAX_MMAP_SIZE=0: no mmap. SQLITE_TEMP_STORE=2: temporary tables
#   and indices in memory unless PRAGMA temp_store says otherwise.
#   SQLITE_EXTRA_INIT: sqlite3-wasi-init.c gives the VFSes a randomness
#   source (WASI random_get) instead of the time of day.
#   The rest follows Debian's own build (debian/rules) so that the guest's
#   SQLite answers like the host's: FTS3/4/5, R*Tree, JSON, math functions,
#   column metadata, dbstat, soundex, URI file names.
mkdir -p "$BUILD/amalgamation"
(cd "$BUILD/amalgamation" &&
    env -u CC -u CFLAGS "$SRC/configure" --disable-tcl >configure.log 2>&1 &&
    make sqlite3.c sqlite3.h sqlite3ext.h >make.log 2>&1)
cd "$BUILD"
cp amalgamation/sqlite3.c amalgamation/sqlite3.h amalgamation/sqlite3ext.h .
opts="-DSQLITE_DEFAULT_UNIX_VFS=\"unix-none\" -DSQLITE_MAX_MMAP_SIZE=0 -DSQLITE_TEMP_STORE=2
      -DSQLITE_EXTRA_INIT=eryx_sqlite3_wasi_init
      -DSQLITE_SECURE_DELETE -DSQLITE_ENABLE_COLUMN_METADATA
      -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS4
      -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_RTREE=1 -DSQLITE_SOUNDEX=1
      -DSQLITE_ENABLE_MATH_FUNCTIONS -DSQLITE_ENABLE_DBSTAT_VTAB
      -DSQLITE_ENABLE_DBPAGE_VTAB -DSQLITE_ENABLE_STMTVTAB
      -DSQLITE_LIKE_DOESNT_MATCH_BLOBS -DSQLITE_USE_URI=1
      -DSQLITE_MAX_VARIABLE_NUMBER=250000 -DSQLITE_MAX_SCHEMA_RETRY=25
      -DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_ENABLE_SESSION"
# shellcheck disable=SC2086
"$WASI_CC" $WASI_CFLAGS $opts -c sqlite3.c -o sqlite3.o
"$WASI_CC" $WASI_CFLAGS -I. -c "$RECIPES/sqlite3-wasi-init.c" -o sqlite3-wasi-init.o
"$WASI_AR" rcs libsqlite3.a sqlite3.o sqlite3-wasi-init.o
mkdir -p "$PREFIX/include" "$PREFIX/lib/pkgconfig"
cp sqlite3.h sqlite3ext.h "$PREFIX/include/"
cp libsqlite3.a "$PREFIX/lib/"
version=$(sed -n 's/^#define SQLITE_VERSION  *"\(.*\)"/\1/p' sqlite3.h)
cat >"$PREFIX/lib/pkgconfig/sqlite3.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: SQLite
Description: SQL database engine
Version: $version
Libs: -L\${libdir} -lsqlite3
Cflags: -I\${includedir}
PC
