"""Numeric loops: a sieve over a bytearray, Collatz chain lengths, a
Mandelbrot grid in floats, modular exponentiation by hand, an integer
matrix product in nested loops."""
import json
import sys
import time

NAME = "numeric_loops"
DEFAULT_N = 4


def sieve(limit):
    flags = bytearray([1]) * (limit + 1)
    flags[0] = flags[1] = 0
    i = 2
    while i * i <= limit:
        if flags[i]:
            for j in range(i * i, limit + 1, i):
                flags[j] = 0
        i += 1
    return sum(flags)


def collatz_longest(limit):
    best, arg = 0, 0
    for start in range(1, limit):
        x, steps = start, 0
        while x != 1:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            steps += 1
        if steps > best:
            best, arg = steps, start
    return arg


def mandel(size, iters):
    inside = 0
    for py in range(size):
        ci = -1.2 + 2.4 * py / size
        for px in range(size):
            cr = -2.0 + 2.6 * px / size
            zr = zi = 0.0
            for _ in range(iters):
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                if zr * zr + zi * zi > 4.0:
                    break
            else:
                inside += 1
    return inside


def powmod(b, e, m):
    r = 1
    b %= m
    while e:
        if e & 1:
            r = r * b % m
        b = b * b % m
        e >>= 1
    return r


def matmul(a, b):
    n, m, p = len(a), len(b), len(b[0])
    out = [[0] * p for _ in range(n)]
    for i in range(n):
        row, oi = a[i], out[i]
        for k in range(m):
            aik, bk = row[k], b[k]
            for j in range(p):
                oi[j] += aik * bk[j]
    return out


def work(n):
    check = 0
    a = [[(i * j) % 7 for j in range(24)] for i in range(24)]
    for rep in range(n):
        check += sieve(60000)
        check += collatz_longest(6000)
        check += mandel(48, 40)
        check += sum(powmod(3 + rep, e, 1000003) for e in range(1000, 3000))
        check += matmul(a, a)[rep % 24][5]
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
