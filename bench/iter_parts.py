"""iter_pipeline's five parts timed alone, and C calls through the
functions whose error paths an edit of the guest's CPython moved out of
line (docs/performance.md, "Error paths out of line: measured, not
taken"): the work runs in C (itertools, map, the slots), not in bytecode.
A per-operation time is under a millisecond: on a noisy host, use 15
rounds or more.

usage: python3 bench/iter_parts.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/iter_parts.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
3, in microseconds per operation, and its ratio to the first runner."""

import itertools
import operator
import sys


# running_mean() and windows() are bench/kernels/iter_pipeline.py's, and the
# five parts its work(): copied, since a sandbox sees only the file it runs.
def running_mean():
    total = 0.0
    count = 0
    mean = None
    while True:
        value = yield mean
        total += value
        count += 1
        mean = total / count


def windows(seq, width):
    it = iter(seq)
    win = list(itertools.islice(it, width))
    if len(win) == width:
        yield tuple(win)
    for x in it:
        win.pop(0)
        win.append(x)
        yield tuple(win)


def map_filter_zip():
    nums = range(0, 40000)
    odd_cubes = map(lambda v: v * v * v, filter(lambda v: v % 2, nums))
    return sum(itertools.starmap(operator.mod, zip(odd_cubes, itertools.count(1))))


def max_accumulate():
    return max(itertools.accumulate(itertools.islice(itertools.cycle((3, 1, 4, 1, 5)), 20000)))


def sort_groupby():
    keyed = sorted((v % 97, v) for v in range(0, 30000, 7))
    return sum(key * sum(1 for _ in grp)
               for key, grp in itertools.groupby(keyed, key=operator.itemgetter(0)))


def send_windows():
    avg = running_mean()
    next(avg)
    last = 0.0
    for i, w in enumerate(windows(range(8000), 4)):
        last = avg.send(sum(w) + i)
    return last


def pairwise_chain():
    words = itertools.chain.from_iterable(("ab", "cd", "ef") for _ in range(5000))
    return sum(1 for a, b in itertools.pairwise(words) if a < b)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


XS = list(range(10000))
YS = list(range(10000, 20000))
WORDS = [str(i) for i in range(10000)]

# name: (operation, how many times one timing repeats it)
CASES = {
    "iter_pipeline: map/filter/zip/starmap sum": (map_filter_zip, 5),
    "iter_pipeline: max(accumulate(islice(cycle)))": (max_accumulate, 10),
    "iter_pipeline: sorted + groupby": (sort_groupby, 5),
    "iter_pipeline: generator driven by send()": (send_windows, 5),
    "iter_pipeline: pairwise over chain": (pairwise_chain, 10),
    "sum(map(operator.add, xs, ys)), 10 000": (lambda: sum(map(operator.add, XS, YS)), 10),
    "sum(map(hash, strs)), 10 000": (lambda: sum(map(hash, WORDS)), 10),
    "list(map(Point, xs, ys)), 10 000 (__init__)": (lambda: list(map(Point, XS, YS)), 5),
}


if __name__ == "__main__" and sys.argv[1:] != ["--worker"]:
    # Under --worker, compare.REPEAT_WORKER, appended to this text, runs.
    from compare import REPEAT_WORKER, cases_side_by_side  # bench/compare.py
    cases_side_by_side(__file__, CASES, __doc__.split("\n")[0], REPEAT_WORKER)
