#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
# server mode, its active suite) against `eryx mcp --http`. The scenarios
# eryx fails by design are listed in conformance-baseline.yml; the suite
# exits non-zero on any other failure and on a listed scenario that passes.
# usage: conformance.sh ERYX_BINARY
set -u
ERYX=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=$("$here/../../scripts/install-npm.sh" | tail -n 1) || exit 1
tmp=$(mktemp -d)
"$ERYX" mcp --http 127.0.0.1:0 2>"$tmp/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^eryx mcp: serving \(http:.*\)$/\1/p' "$tmp/err")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "eryx mcp --http did not start"; cat "$tmp/err"; exit 1; }
cd "$tmp"
timeout 600 node "$npm_dir/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
    server --url "$url" --expected-failures "$here/conformance-baseline.yml" >"$tmp/out" 2>&1
status=$?
sed -n '/=== SUMMARY ===/,$p' "$tmp/out"
[ $status = 0 ] || { echo "conformance: exit status $status"; tail -40 "$tmp/out"; }
exit $status
