#!/usr/bin/env bash
# Installs what the benchmark's peer runners and plots need, only when missing:
#   the baseline: native CPython built with PGO and LTO (bench/build-native-pgo.sh,
#     cached in $ERYX_CACHE_DIR; 30-60 minutes the first time),
#   gnuplot (apt: gnuplot-nox) for the PNG plots,
#   pyodide (npm, version pinned in bench/package.json) under bench/node_modules.
# Node itself (for node-wasi and pyodide) comes from the system; without it
# those runners are skipped by run.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/build-native-pgo.sh" >/dev/null
if ! command -v gnuplot >/dev/null; then
    echo "bench/setup.sh: installing gnuplot-nox" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null
fi
if command -v npm >/dev/null; then
    if [ ! -f "$here/node_modules/pyodide/pyodide.mjs" ]; then
        echo "bench/setup.sh: npm install (pyodide)" >&2
        (cd "$here" && npm install --no-audit --no-fund >&2) ||
            echo "bench/setup.sh: pyodide could not be installed; run.py will skip it" >&2
    fi
else
    echo "bench/setup.sh: no npm; the pyodide runner will be skipped" >&2
fi
