"""Exceptions as control flow: EAFP lookups (KeyError, IndexError,
AttributeError), StopIteration from next(), a custom exception raised deep
in recursion, try/finally, context managers, raise ... from."""
import json
import sys
import time

NAME = "exceptions_flow"
DEFAULT_N = 3


class Found(Exception):
    def __init__(self, path):
        super().__init__(path)
        self.path = path


class Counting:
    entered = 0

    def __enter__(self):
        Counting.entered += 1
        return self

    def __exit__(self, kind, value, tb):
        return kind is ZeroDivisionError


def search(node, target, path):
    if node == target:
        raise Found(path)
    if node > target * 4:
        return
    search(node * 2, target, path + 1)
    search(node * 2 + 1, target, path + 1)


def lookups(table, keys):
    hits = 0
    for k in keys:
        try:
            hits += table[k]
        except KeyError:
            hits -= 1
    return hits


def drain(it):
    total = 0
    while True:
        try:
            total += next(it)
        except StopIteration:
            return total


def convert(text):
    try:
        return int(text)
    except ValueError as e:
        raise LookupError(text) from e


def work(n):
    table = {i: i % 7 for i in range(0, 4000, 3)}
    check = 0
    for rep in range(n):
        check += lookups(table, range(12000))
        check += drain(iter(range(15000)))
        for t in range(200, 700):
            try:
                search(1, t, 0)
            except Found as f:
                check += f.path
        for i in range(5000):
            with Counting():
                check += 10 // (i % 5)
        bad = 0
        for s in ("12", "x3", "40", "") * 1500:
            try:
                check += convert(s)
            except LookupError as e:
                bad += e.__cause__ is not None
            finally:
                check += 1
        seq = list(range(50))
        for i in range(10000):
            try:
                check += seq[i % 70]
            except IndexError:
                check -= 1
            try:
                check += (i if i % 2 else None).bit_length()
            except AttributeError:
                pass
        check += bad
    return check + Counting.entered


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
