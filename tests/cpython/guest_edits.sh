#!/usr/bin/env bash
# guest_edits.py inside eryx and under the native build python: each side
# must pass its own checks, and their reports must be the same line by line.
# usage: guest_edits.sh ERYX_BINARY NATIVE_PYTHON
set -u
eryx=$1
native=$2
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
"$native" "$here/guest_edits.py" >"$dir/native" || { echo "FAIL: native's checks"; fail=1; }
"$eryx" "$here/guest_edits.py" >"$dir/guest" || { echo "FAIL: the guest's checks"; fail=1; }
if ! diff "$dir/native" "$dir/guest"; then
    echo "FAIL: the reports differ (native < > guest)"
    fail=1
fi
[ "$(wc -l <"$dir/guest")" -gt 30 ] || { echo "FAIL: the guest reported too little"; fail=1; }
[ $fail = 0 ] && echo "guest_edits: $(wc -l <"$dir/guest") cases alike"
exit $fail
