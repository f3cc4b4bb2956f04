#!/usr/bin/env bash
# Golden tests of the eryx command line. Each cases/NAME.cmd is a shell
# command ($ERYX is the binary, $DATA the data directory); NAME.out is the
# exact expected stdout, NAME.status the exit status, and NAME.err, when
# present, the exact expected stderr.
# usage: run_golden.sh ERYX_BINARY
set -u
ERYX=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
DATA=$here/data
export ERYX DATA
pass=0 fail=0
tmp=$(mktemp -d)
# The default image is cached here (made by the first case that runs code):
# every case but the first loads it, as a user's eryx does.
cache=$(mktemp -d)
export XDG_CACHE_HOME=$cache
trap 'rm -rf "$tmp" "$cache"' EXIT
for cmd in "$here"/cases/*.cmd; do
    name=$(basename "$cmd" .cmd)
    (cd "$tmp" && bash "$cmd" >"$tmp/out" 2>"$tmp/err" </dev/null)
    status=$?
    ok=1
    want_status=$(cat "$here/cases/$name.status")
    if [ "$status" != "$want_status" ]; then
        echo "FAIL $name: exit status $status, want $want_status"; ok=0
    fi
    if ! cmp -s "$tmp/out" "$here/cases/$name.out"; then
        echo "FAIL $name: stdout differs:"; diff "$here/cases/$name.out" "$tmp/out" | head -20; ok=0
    fi
    if [ -f "$here/cases/$name.err" ] && ! cmp -s "$tmp/err" "$here/cases/$name.err"; then
        echo "FAIL $name: stderr differs:"; diff "$here/cases/$name.err" "$tmp/err" | head -20; ok=0
    fi
    if [ $ok = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "cli golden: $pass passed, $fail failed"
[ $fail = 0 ]
