"""Sequence unpacking: tuple/list unpacking, swaps, starred targets,
unpacking in for loops and function calls."""
import json
import sys
import time

NAME = "unpacking"
DEFAULT_N = 18


def f3(a, b, c):
    return a + b - c


def work(n):
    data = [(i, i * 2, i * 3) for i in range(1000)]
    lists = [[i, -i, i % 5, 7] for i in range(1000)]
    total = 0
    for _ in range(n):
        for _ in range(50):
            for a, b, c in data:
                a, b, c = c, a, b
                total += a - b + c
            for first, *rest in lists:
                total += first + len(rest)
            for w, x, y, z in lists:
                w, x = x, w
                y, z = z, y
                total += w + x + y + z
            for t in data:
                total += f3(*t)
            x, y = 0, 1
            for _k in range(200):
                x, y = y, (x + y) & 0xFFFF
            total += x
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
