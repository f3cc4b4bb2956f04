#!/usr/bin/env bash
# A scaled-out `eryx serve` on this machine, without containers: a
# redis-server, 3 replicas sharing it (--redis) and one journal key
# (--journal-key-file), and HAProxy on loopback in front of them (round
# robin, /healthz checks, a connection refused by a dead replica retried on
# another). Prints the URL and the token file; Ctrl-C (or SIGTERM) stops
# everything it started. Every process is its own (no system service is
# touched); logs and the generated token and key are in the work directory.
#
# usage: scripts/serve-demo.sh [--replicas N] [--workdir DIR]
#   ERYX_CLI: the eryx command (default build/bin/eryx: scripts/build.sh).
#
# Then, for instance (each step on a new connection, so on the next replica):
#   PYTHONPATH=build/python python3 -c "from eryx import remote
#   s = remote.Session(URL, token_file=TOKEN_FILE, session='demo')
#   print(s.execute('x = globals().get(\"x\", 0) + 1; print(x)'))"
# or `eryx --remote URL --token-file TOKEN_FILE --session demo -c 'print(1)'`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in redis-server haproxy python3; do
    command -v "$tool" >/dev/null || { echo "serve-demo: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
export ERYX_CLI=${ERYX_CLI:-$root/build/bin/eryx}
export PYTHONPATH=$root/build/python${PYTHONPATH:+:$PYTHONPATH}
exec python3 "$root/tests/serve/cluster.py" "$@"
