#!/usr/bin/env bash
# Builds what is missing (scripts/build.sh), installs the peers' dependencies
# (bench/setup.sh), then runs the suite and rewrites BENCHMARKS.md.
# usage: bench/run.sh [run.py options, e.g. --rounds 5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../scripts/build.sh" >/dev/null
"$here/setup.sh"
guest=$("$here/../guest/build.sh" | tail -n 1)
exec "$(cat "$guest/python-native.path")" "$here/run.py" --guest-dir "$guest" "$@"
