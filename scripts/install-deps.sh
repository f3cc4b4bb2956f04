#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only when missing.
# tcl makes SQLite's amalgamation (guest/clibs/sqlite3.sh); the -dev packages
# give the native build python the same modules as the guest, and tzdata its
# time zones (the native side of tests and benchmarks). libhiredis and libzstd
# are the session store's of `eryx serve` (opened with dlopen), redis-server
# and haproxy what its tests run against.
set -euo pipefail
. "$(dirname "$0")/env.sh"
pkgs="clang-$ERYX_LLVM lld-$ERYX_LLVM llvm-$ERYX_LLVM libclang-rt-$ERYX_LLVM-dev-wasm32 libclang-rt-$ERYX_LLVM-dev wabt
      cmake make gcc g++ pkg-config libjansson-dev libedit-dev libxxhash-dev libhiredis-dev libzstd-dev libssl-dev openssl libzip-dev xz-utils dpkg-dev ca-certificates
      valgrind redis-server haproxy
      python3 python3-dev python3-setuptools python3-pip python3-pytest
      python3-jinja2 python3-markupsafe python3-yaml python3-attr python3-tabulate
      python3-requests python3-urllib3 python3-httpx python3-certifi python3-idna
      tcl zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev tzdata"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
# Node and npm for the MCP tests (scripts/install-npm.sh installs their npm
# packages): Debian's, unless a node and an npm are already there.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "install-deps: installing nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
