#!/usr/bin/env bash
# Fetches the CPython upstream tarball (from Debian's python3.13 source package)
# and the WASI sysroot (Debian's wasi-libc binary package) through a private apt
# configuration, so the machine's own apt sources stay untouched.
# Output: $ERYX_CACHE_DIR/src/Python-<ver>.tar.xz and $ERYX_CACHE_DIR/sysroot/
#
#   fetch-sources.sh --source PACKAGE=VERSION
#       a Debian source package, unpacked with Debian's patches applied
#       (dpkg-source -x), for the guest's C libraries (guest/clibs/build.sh);
#       prints the directory: $ERYX_CACHE_DIR/src/PACKAGE_VERSION
#   fetch-sources.sh --deb PACKAGE=VERSION
#       a Debian binary package (the "all" architecture); prints the path of
#       the .deb: $ERYX_CACHE_DIR/debs/PACKAGE_VERSION_all.deb
#   fetch-sources.sh --orig PACKAGE=VERSION
#       only the upstream tarball of a Debian source package, for a source
#       whose .dsc the archive no longer serves (llvm-toolchain-22's, for
#       guest/wasm_pgo.sh); prints its path: $ERYX_CACHE_DIR/src/PACKAGE_UPSTREAM.orig.tar.*
# apt has checked every file against the archive's signed Release file, so
# dpkg-source is told not to look for the uploader's signature.
set -euo pipefail
. "$(dirname "$0")/env.sh"

src="$ERYX_CACHE_DIR/src"
apt_dir="$ERYX_CACHE_DIR/apt"
mkdir -p "$src" "$apt_dir"/{lists/partial,cache/archives/partial,sources.list.d,preferences.d}
tarball="$src/python-upstream-$ERYX_PY_DEB_VERSION.tar.xz"
sysroot="$ERYX_CACHE_DIR/sysroot-$ERYX_WASI_LIBC_DEB"
# Each fetch downloads into a temporary directory of its own, removed
# however the script ends: a failed fetch leaves nothing behind in /tmp.
work=""
trap 'rm -rf "$work"' EXIT

private_apt() {
    cat >"$apt_dir/sources.list.new" <<SRC
deb-src http://deb.debian.org/debian $ERYX_PY_SUITE main
deb [arch=all] http://deb.debian.org/debian sid main
SRC
    if cmp -s "$apt_dir/sources.list.new" "$apt_dir/sources.list"; then
        rm "$apt_dir/sources.list.new"
    else
        mv "$apt_dir/sources.list.new" "$apt_dir/sources.list"
    fi
    touch "$apt_dir/status"
    cat >"$apt_dir/apt.conf" <<CONF
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/sources.list.d";
Dir::Etc::Preferences "$apt_dir/preferences";
Dir::Etc::PreferencesParts "$apt_dir/preferences.d";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
APT::Architectures { "amd64"; "all"; };
CONF
    export APT_CONFIG="$apt_dir/apt.conf"
    # One update serves the several fetches of one build (each library is
    # fetched by a process of its own): skipped when the last one, for the
    # same sources, is less than an hour old.
    if [ -z "$(find "$apt_dir/updated" -newer "$apt_dir/sources.list" -mmin -60 2>/dev/null)" ]; then
        apt-get -o APT::Sandbox::User=root update -q >/dev/null
        touch "$apt_dir/updated"
    fi
}

# A version is pinned; when the archive stops serving it, say which one.
fetch_failed() {
    echo "fetch-sources: $1 is not served by the archive any more (or the network is down):" \
        "pin a version it serves in $2" >&2
    exit 1
}

case "${1:-}" in
--source)
    pkg=${2%%=*} version=${2#*=}
    dir="$src/${pkg}_${version#*:}"
    if [ ! -f "$dir/.stamp" ]; then
        private_apt
        echo "fetch-sources: $2 source package" >&2
        work=$(mktemp -d)
        (cd "$work" && apt-get -o APT::Sandbox::User=root source -q --download-only "$2" >/dev/null) ||
            fetch_failed "$2" guest/clibs/list
        dpkg-source -q --no-check -x "$work"/*.dsc "$work/x" >/dev/null
        touch "$work/x/.stamp"
        rm -rf "$dir" && mv "$work/x" "$dir"
    fi
    echo "$dir"
    exit 0 ;;
--orig)
    pkg=${2%%=*} version=${2#*=}
    upstream=${version#*:} upstream=${upstream%-*}
    orig=$(ls "$src/${pkg}_$upstream".orig.tar.* 2>/dev/null | head -n 1 || true)
    if [ -z "$orig" ]; then
        private_apt
        echo "fetch-sources: $2 upstream tarball" >&2
        work=$(mktemp -d)
        # apt checks each file against the signed index as it arrives; the
        # files it could not fetch (the .dsc) are not needed here.
        (cd "$work" && apt-get -o APT::Sandbox::User=root source -q --download-only "$2" >/dev/null 2>&1) || true
        got=$(ls "$work/${pkg}_$upstream".orig.tar.* 2>/dev/null | head -n 1 || true)
        [ -n "$got" ] || fetch_failed "$2" scripts/env.sh
        orig=$src/${got##*/}
        mv "$got" "$orig.tmp" && mv "$orig.tmp" "$orig"
    fi
    echo "$orig"
    exit 0 ;;
--deb)
    pkg=${2%%=*} version=${2#*=}
    deb="$ERYX_CACHE_DIR/debs/${pkg}_${version#*:}_all.deb"
    if [ ! -s "$deb" ]; then
        private_apt
        echo "fetch-sources: $2 binary package" >&2
        work=$(mktemp -d)
        (cd "$work" && apt-get -o APT::Sandbox::User=root download -q "$2" >/dev/null) ||
            fetch_failed "$2" scripts/env.sh
        mkdir -p "${deb%/*}"
        mv "$work"/*.deb "$deb.tmp" && mv "$deb.tmp" "$deb"
    fi
    echo "$deb"
    exit 0 ;;
esac

if [ ! -s "$tarball" ] || [ ! -d "$sysroot" ]; then
    private_apt
fi

if [ ! -s "$tarball" ]; then
    echo "fetch-sources: python3.13=$ERYX_PY_DEB_VERSION source package"
    work=$(mktemp -d)
    (cd "$work" && apt-get -o APT::Sandbox::User=root source -q --download-only "python$ERYX_PY_VERSION=$ERYX_PY_DEB_VERSION" >/dev/null)
    orig=$(ls "$work"/*.orig.tar.* | head -n 1)
    mv "$orig" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$work"   # the sysroot's fetch below takes another
fi

if [ ! -d "$sysroot" ]; then
    echo "fetch-sources: wasi-libc=$ERYX_WASI_LIBC_DEB sysroot"
    work=$(mktemp -d)
    (cd "$work" && apt-get -o APT::Sandbox::User=root download -q "wasi-libc=$ERYX_WASI_LIBC_DEB" >/dev/null)
    dpkg-deb -x "$work"/wasi-libc_*.deb "$work/x"
    mv "$work/x/usr" "$sysroot.tmp" && mv "$sysroot.tmp" "$sysroot"
fi
echo "$tarball"
