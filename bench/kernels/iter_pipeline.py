"""Iterator pipelines: itertools chains, map/filter/zip, generators driven
with send(), groupby, accumulate, enumerate, islice."""
import itertools
import json
import operator
import sys
import time

NAME = "iter_pipeline"
DEFAULT_N = 40


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


def work(n):
    check = 0
    for rep in range(n):
        nums = range(rep, rep + 40000)
        odd_cubes = map(lambda v: v * v * v, filter(lambda v: v % 2, nums))
        pairs = zip(odd_cubes, itertools.count(1))
        check += sum(itertools.starmap(operator.mod, pairs)) % 100003
        acc = itertools.accumulate(itertools.islice(itertools.cycle((3, 1, 4, 1, 5)), 20000))
        check += max(acc)
        keyed = sorted((v % 97, v) for v in range(0, 30000, 7))
        for key, grp in itertools.groupby(keyed, key=operator.itemgetter(0)):
            check += key * sum(1 for _ in grp)
        avg = running_mean()
        next(avg)
        last = 0.0
        for i, w in enumerate(windows(range(8000), 4)):
            last = avg.send(sum(w) + i)
        check += int(last)
        words = itertools.chain.from_iterable(("ab", "cd", "ef") for _ in range(5000))
        check += sum(1 for a, b in itertools.pairwise(words) if a < b)
    return check


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_N
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    best = None
    check = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        check = work(n)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    print(json.dumps({"kernel": NAME, "seconds": best, "n": n,
                      "repeats": repeats, "check": check}))


if __name__ == "__main__":
    main()
