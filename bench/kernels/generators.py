"""Generator pipelines: chained generators, yield from, generator expressions."""
import json
import sys
import time

NAME = "generators"
DEFAULT_N = 18


def count_up(n):
    i = 0
    while i < n:
        yield i
        i += 1


def squares(it):
    for x in it:
        yield x * x


def evens(it):
    for x in it:
        if x & 1 == 0:
            yield x


def chunked(it, size):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def flatten(chunks):
    for c in chunks:
        yield from c


def tree(depth):
    if depth == 0:
        yield 1
        return
    yield from tree(depth - 1)
    yield from tree(depth - 1)


def work(n):
    total = 0
    for _ in range(n):
        total += sum(flatten(chunked(evens(squares(count_up(60000))), 7)))
        total += sum(x % 7 for x in range(100000) if x % 3)
        total += sum(tree(13))
    return total


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
