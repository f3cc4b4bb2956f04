#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only when missing.
set -euo pipefail
. "$(dirname "$0")/env.sh"
pkgs="clang-$ERYX_LLVM lld-$ERYX_LLVM llvm-$ERYX_LLVM libclang-rt-$ERYX_LLVM-dev-wasm32 libclang-rt-$ERYX_LLVM-dev wabt
      cmake make gcc g++ pkg-config libjansson-dev libedit-dev libxxhash-dev libzip-dev xz-utils dpkg-dev ca-certificates
      valgrind
      python3 python3-jinja2 python3-markupsafe python3-yaml python3-attr python3-tabulate"
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
