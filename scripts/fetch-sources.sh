#!/usr/bin/env bash
# Fetches the CPython upstream tarball (from Debian's python3.13 source package)
# and the WASI sysroot (Debian's wasi-libc binary package) through a private apt
# configuration, so the machine's own apt sources stay untouched.
# Output: $ERYX_CACHE_DIR/src/Python-<ver>.tar.xz and $ERYX_CACHE_DIR/sysroot/
set -euo pipefail
. "$(dirname "$0")/env.sh"

src="$ERYX_CACHE_DIR/src"
apt_dir="$ERYX_CACHE_DIR/apt"
mkdir -p "$src" "$apt_dir"/{lists/partial,cache/archives/partial,sources.list.d,preferences.d}
tarball="$src/python-upstream-$ERYX_PY_DEB_VERSION.tar.xz"
sysroot="$ERYX_CACHE_DIR/sysroot-$ERYX_WASI_LIBC_DEB"

private_apt() {
    cat >"$apt_dir/sources.list" <<SRC
deb-src http://deb.debian.org/debian $ERYX_PY_SUITE main
deb [arch=all] http://deb.debian.org/debian sid main
SRC
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
    apt-get -o APT::Sandbox::User=root update -q >/dev/null
}

if [ ! -s "$tarball" ] || [ ! -d "$sysroot" ]; then
    private_apt
fi

if [ ! -s "$tarball" ]; then
    echo "fetch-sources: python3.13=$ERYX_PY_DEB_VERSION source package"
    work=$(mktemp -d)
    (cd "$work" && apt-get -o APT::Sandbox::User=root source -q --download-only "python$ERYX_PY_VERSION=$ERYX_PY_DEB_VERSION" >/dev/null)
    orig=$(ls "$work"/*.orig.tar.* | head -n 1)
    mv "$orig" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
fi

if [ ! -d "$sysroot" ]; then
    echo "fetch-sources: wasi-libc=$ERYX_WASI_LIBC_DEB sysroot"
    work=$(mktemp -d)
    (cd "$work" && apt-get -o APT::Sandbox::User=root download -q "wasi-libc=$ERYX_WASI_LIBC_DEB" >/dev/null)
    dpkg-deb -x "$work"/wasi-libc_*.deb "$work/x"
    mv "$work/x/usr" "$sysroot.tmp" && mv "$sysroot.tmp" "$sysroot"
    rm -rf "$work"
fi
echo "$tarball"
