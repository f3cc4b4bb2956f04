#!/usr/bin/env bash
# Fuzzes every harness (or the ones named) for a long time each, in the
# ERYX_FUZZ build (build-fuzz/, made here if missing). The corpus grows in
# build-fuzz/fuzz-work/ from one run to the next; findings are left in
# build-fuzz/fuzz-artifacts/ (see docs/fuzzing.md for what to do with them).
#   usage: bench/fuzz.sh [SECONDS_PER_HARNESS [NAME...]]   (default 600 s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
shift || true
"$root/scripts/build-fuzz.sh" "$root/build-fuzz"
exec "$root/tests/fuzz/run.sh" "$root/build-fuzz" "$seconds" "$@"
