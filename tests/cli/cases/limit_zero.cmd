# 0 silently meant the default: --max-output 0 kept 10M, --max-memory 0
# gave 128M. --max-memory 0 is now no limit (as --timeout 0: the most a
# wasm32 memory can be), --max-output 0 a usage error (the host keeps
# the output it lets through: it stays bounded). --max-memory past 4G is
# a usage error, not accepted and reported as a limit that can never be
# reached, and one below the 32M the interpreter needs too (it named the
# library's field: "max_memory 1048576 is below..."). --stats says null
# for a limit that is none (--timeout 0 said 18446744073709).
$ERYX --max-output 0 -c 'print("a" * (11 << 20))' | wc -c; echo "status ${PIPESTATUS[0]}"
$ERYX --max-output 10 -c 'import sys; print("a" * 8); print("b" * 8, file=sys.stderr)'; echo "status $?"
$ERYX --max-memory 0 --timeout 0 --stats -c 'pass' 2>&1 |
    python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["memory_limit"], s["output_limit"], s["timeout_ms"])'
$ERYX --max-memory 5G -c 'pass'; echo "status $?"
$ERYX --max-memory 1M -c 'pass'; echo "status $?"
$ERYX --timeout 1k -c 'pass'; echo "status $?"
