"""Long scans of strings and bytes: the 1-character searches that CPython
hands to memchr and memrchr, and the comparisons it hands to memcmp, which
guest/host_string.c passes to the host's libc past 32 bytes
(docs/performance.md, "The guest's string scans"); with searches CPython
does in its own loops (a 5-character word, splitlines, short keys) as
controls.

usage: python3 bench/string_scans.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/string_scans.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
3, in microseconds per operation, and its ratio to the first runner."""

import sys

MB = 1 << 20
TEXT = "a" * MB + "x"
DATA = TEXT.encode()
COPY = bytes(bytearray(DATA))           # equal, another object
LOG = ("INFO request served in 12 ms; user=alice path=/api/items\n" * 18000
       + "ERROR disk full\n")
KEYS = [f"key_{i}" for i in range(1000)]
TABLE = dict.fromkeys(KEYS, 1)

# name: (operation, how many times one timing repeats it)
CASES = {
    "str.find of 1 character, 1 MB": (lambda: TEXT.find("x"), 20),
    "bytes.find of 1 byte, 1 MB": (lambda: DATA.find(b"x"), 20),
    "1 character `in` str, 1 MB": (lambda: "x" in TEXT, 20),
    "str.rfind of 1 character, 1 MB": (lambda: TEXT.rfind("b"), 20),
    "str.partition at 1 character, 1 MB log": (lambda: LOG.partition("E"), 20),
    "bytes ==, equal, 1 MB": (lambda: DATA == COPY, 20),
    "str.find of 1 character, 20 characters (short)": (lambda: "abcdefghijklmnopqrsx".find("x"), 100_000),
    "control: str.count of a 5-character word, 1 MB log": (lambda: LOG.count("ERROR"), 10),
    "control: splitlines, 1 MB log": (lambda: LOG.splitlines(), 5),
    "control: dict lookups of 1,000 short keys": (lambda: [TABLE[k] for k in KEYS], 200),
}


if __name__ == "__main__" and sys.argv[1:] != ["--worker"]:
    # Under --worker, compare.REPEAT_WORKER, appended to this text, runs.
    from compare import REPEAT_WORKER, cases_side_by_side  # bench/compare.py
    cases_side_by_side(__file__, CASES, __doc__.split("\n")[0], REPEAT_WORKER)
