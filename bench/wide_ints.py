"""Where the guest's C `long` is 32 bits and native's 64: the operations
CPython runs on a C integer only while a value fits in a `long`, timed past
2**31 and, as a control, below it. guest/patch-cpython.py widens `sum()`'s
(docs/performance.md, "`sum()` as wide as native's"); `range()`'s widening
was measured and not taken ("`range()` as wide as native's: measured, not
taken"), and the others show what is left.

usage: python3 bench/wide_ints.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/wide_ints.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
7, in ms, and its ratio to the first runner."""

import itertools
import sys
import time

BIG = 2**31
SMALL = 100_000
N = 200_000


def loop_range(start, step=1):
    for _ in range(start, start + N * step, step):
        pass


def build_ranges(start):
    for _ in range(20_000):
        start + 5 in range(start, start + 100)


def sum_squares(first):
    squares = [x * x for x in range(first, first + 10_000)]
    for _ in range(20):
        sum(squares)


def loop_count(start):
    for _ in itertools.islice(itertools.count(start), N):
        pass


def loop_enumerate(start):
    for _ in enumerate(itertools.repeat(None, N), start):
        pass


CASES = {
    "range below 2**31": lambda: loop_range(SMALL),
    "range past 2**31": lambda: loop_range(BIG),
    "range of ms timestamps": lambda: loop_range(1_700_000_000_000, 1000),
    "range() built below 2**31": lambda: build_ranges(SMALL),
    "range() built past 2**31": lambda: build_ranges(BIG),
    "sum() of squares below 2**31": lambda: sum_squares(10),
    "sum() of squares past 2**31": lambda: sum_squares(1000),
    "count() below 2**31": lambda: loop_count(SMALL),
    "count() past 2**31": lambda: loop_count(BIG),
    "enumerate() below 2**31": lambda: loop_enumerate(SMALL),
    "enumerate() past 2**31": lambda: loop_enumerate(BIG),
}


def worker():
    import json
    best = {}
    for name, case in CASES.items():
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            case()
            times.append(time.perf_counter() - t0)
        best[name] = min(times) * 1e3
    print(json.dumps(best))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        from compare import cases_side_by_side  # bench/compare.py, next to this file
        cases_side_by_side(__file__, CASES, __doc__.split("\n")[0])
