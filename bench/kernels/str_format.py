"""String building: f-strings, %-formatting, str.format, join, replace,
encode/decode and slicing."""
import json
import sys
import time

NAME = "str_format"
DEFAULT_N = 6


def render(i):
    name = "user%05d" % i
    line = f"{name:<12}|{i:>8d}|{i / 7:10.3f}|{i:#x}"
    line2 = "{0}-{1!r}-{2:.2e}".format(name, line[:5], i * 1.5)
    return line + ";" + line2


def work(n):
    total = 0
    for _ in range(n):
        rows = [render(i) for i in range(20000)]
        blob = "\n".join(rows)
        blob = blob.replace("user", "U").upper()
        data = blob.encode("utf-8")
        total += len(data.decode("utf-8").split("\n"))
        total += sum(len(r[3:17].strip()) for r in rows[::3])
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
