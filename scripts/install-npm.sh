#!/usr/bin/env bash
# Installs the npm packages the MCP tests and benchmarks use (the exact
# versions of tests/mcp/package-lock.json: the TypeScript SDK, the
# conformance suite, server-everything, server-filesystem) into
# $ERYX_CACHE_DIR/npm-mcp-<hash of the lockfile>/ and prints that directory
# on its last line. Once installed, it works offline. Installs Debian's
# nodejs and npm first when node or npm is missing.
# usage: scripts/install-npm.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/env.sh"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "install-npm: installing nodejs npm (Debian)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
lock=$root/tests/mcp/package-lock.json
key=$(cat "$root/tests/mcp/package.json" "$lock" | sha256sum | cut -c1-16)
dir=$ERYX_CACHE_DIR/npm-mcp-$key
mkdir -p "$ERYX_CACHE_DIR"
exec 9>"$ERYX_CACHE_DIR/npm-mcp.lock"
flock 9   # tests started together install once
if [ ! -f "$dir/.complete" ]; then
    echo "install-npm: npm ci into $dir" >&2
    tmp=$(mktemp -d "$ERYX_CACHE_DIR/npm-mcp-tmp.XXXXXX")
    cp "$root/tests/mcp/package.json" "$lock" "$tmp/"
    (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
fi
echo "$dir"
