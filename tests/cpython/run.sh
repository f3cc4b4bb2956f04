#!/usr/bin/env bash
# Runs CPython's own regression tests inside eryx: Lib/test of the source tree
# the guest was built from is mounted read-only at the place the standard
# library expects its "test" package, for this run only.
# usage: run.sh ERYX_BINARY PYTHON_SOURCE_DIR [test names...]
# Prints libregrtest's summary and one line "cpython: N passed, N failed,
# N skipped" (counts of test cases); exits non-zero if any test failed.
set -u
eryx=$1
src=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
    # One module a line in modules.txt; '#' starts a comment.
    set -- $(sed -e 's/#.*//' "$here/modules.txt")
fi
# Sub-tests that cannot pass in a sandbox, one a line in skips.txt: a test id
# (or regrtest pattern) and the reason. regrtest leaves them out (-i).
ignore=()
while read -r pattern _; do
    [ -n "$pattern" ] && ignore+=(-i "$pattern")
done < <(sed -e 's/#.*//' "$here/skips.txt")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$eryx" --timeout 0 --max-memory 1G --mount "$src/Lib/test:/usr/lib/python3.13/test" \
    -m test "${ignore[@]}" "$@" 2>&1 | tee "$log" | grep -E "^(0:|[0-9]+:).*(test_|Total)|^Total|^Result|FAIL|ERROR" | tail -n 80
status=${PIPESTATUS[0]}
# libregrtest: "Total tests: run=613 failures=0 skipped=28"
totals=$(grep -E "^Total tests: run=" "$log" | tail -n 1)
run=$(sed -n 's/.*run=\([0-9,]*\).*/\1/p' <<<"$totals" | tr -d ,)
failures=$(sed -n 's/.*failures=\([0-9,]*\).*/\1/p' <<<"$totals" | tr -d ,)
skipped=$(sed -n 's/.*skipped=\([0-9,]*\).*/\1/p' <<<"$totals" | tr -d ,)
run=${run:-0} failures=${failures:-0} skipped=${skipped:-0}
if [ "$run" = 0 ]; then
    echo "cpython: no test ran (exit status $status):"
    tail -n 30 "$log"
    exit 1
fi
echo "cpython modules: $#; sub-tests left out (skips.txt): $(( ${#ignore[@]} / 2 ))"
echo "cpython: $(( run - failures - skipped )) passed, $failures failed, $skipped skipped"
[ "$status" = 0 ] && [ "$failures" = 0 ]
