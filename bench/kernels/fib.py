"""Naive recursive Fibonacci: Python-to-Python calls, int arithmetic."""
import json
import sys
import time

NAME = "fib"
DEFAULT_N = 30


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def work(n):
    r = 0
    for _ in range(n):
        r = fib(25)
    return r


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
