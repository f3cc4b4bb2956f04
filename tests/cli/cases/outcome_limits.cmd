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
# A session whose own objects fill its memory meets MemoryError at every
# run, before its code: the message says what mends it (it said the
# outcome could not be reported).
printf 'l = []\nfor size in (10**5, 100, 1):\n    try:\n        while True:\n            l.append(bytearray(size) if size > 1 else 1.5)\n    except MemoryError:\n        pass\n' >fill.py
$ERYX --max-memory 32M --session full.ses fill.py; echo "status $?"
$ERYX --max-memory 32M --session full.ses -c 'del l' 2>&1 | grep -o 'reset the session or give it a larger max_memory'; echo "status ${PIPESTATUS[0]}"
$ERYX --max-memory 64M --session full.ses -c 'del l; print("freed")'; echo "status $?"
