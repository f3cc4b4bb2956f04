#!/usr/bin/env bash
# Runs bench/store_bench.c against a redis-server of its own (loopback, a
# free port, no persistence) and against the memory store.
#   usage: bench/store.sh [BUILD] [repeats]     (default: build, 5)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
repeats=${2:-5}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize no --loglevel warning >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
echo "== redis://127.0.0.1:$port"
"$build/bench/store_bench" "redis://127.0.0.1:$port" "$repeats"
echo "== memory store"
"$build/bench/store_bench" mem "$repeats"
