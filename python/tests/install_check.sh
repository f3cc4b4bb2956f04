#!/usr/bin/env bash
# Installs the package the README's way (pip, no build isolation, Debian's
# setuptools) into a scratch directory and runs it from there: the link
# line (liberyx.a and what it needs), the package data, `python -m eryx`
# and the `eryx` script.
#   install_check.sh PYTHON SCRATCH_DIR     (ERYX_BUILD_DIR: the build)
set -euo pipefail
py=$1
dir=$2
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$dir"
mkdir -p "$dir"
# A copy of the sources: pip builds in place, and the tree stays clean.
cp -r "$src/setup.py" "$src/pyproject.toml" "$src/src" "$src/eryx" "$dir/"
mkdir -p "$dir/pkg"
# setup.py finds include/ and scripts/ relative to itself: point it at the tree.
sed -i "s|^ROOT = .*|ROOT = '$(dirname "$src")'|" "$dir/setup.py"
"$py" -m pip install -q --no-build-isolation --no-deps --target "$dir/pkg" "$dir" 2>&1 |
    grep -v "Running pip as the 'root' user" || true
test -f "$dir/pkg/eryx/py.typed"
test -f "$dir/pkg/eryx/_eryx.pyi"
out=$(cd / && PYTHONPATH="$dir/pkg" "$py" -c '
import eryx
print(eryx.Session().execute("print(6 * 7)").stdout, end="")')
test "$out" = 42 || { echo "installed package printed: $out"; exit 1; }
set +e
(cd / && PYTHONPATH="$dir/pkg" "$py" -m eryx -c 'import sys; sys.exit(5)')
rc=$?
set -e
test "$rc" = 5 || { echo "python -m eryx exited $rc, want 5"; exit 1; }
# The command is the package's own copy, not the build tree's: the
# installed package needs nothing of the build (python -m eryx, the script
# `eryx`, and mcp-proxy for remote MCP servers run it).
test -x "$dir/pkg/eryx/bin/eryx"
cli=$(cd / && env -u ERYX_CLI PYTHONPATH="$dir/pkg" "$py" -c '
from eryx.__main__ import _find_cli
print(_find_cli())')
test "$cli" = "$dir/pkg/eryx/bin/eryx" || { echo "python -m eryx runs $cli"; exit 1; }
out=$(cd / && env -u ERYX_CLI PYTHONPATH="$dir/pkg" "$dir/pkg/bin/eryx" -c 'print(6 * 7)')
test "$out" = 42 || { echo "the eryx script printed: $out"; exit 1; }
echo "install check: ok"
