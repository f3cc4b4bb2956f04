# An exception's text is output too: kept to --max-output (at least 1 KiB),
# with a line saying how much was cut. A raise of a 300 MB text made the
# host hold three copies of it, and the CLI wrote it all to stderr, until
# 2026-12-07. A SystemExit whose code has more digits than str() writes
# ends as SystemExit (status 1): it was reported as a KeyboardInterrupt.
mkdir outcome_limits && cd outcome_limits  # its own directory: the cases share one
$ERYX --max-output 1k -c 'raise ValueError("x" * 30_000_000)' 2>err.txt; echo "status $?"
wc -c <err.txt
tail -n 1 err.txt
$ERYX --stats -c 'import sys; sys.exit(10**5000)' 2>&1 | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["status"], d["exit_code"])'; echo "status ${PIPESTATUS[0]}"
