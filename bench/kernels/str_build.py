"""String building: += in loops, list-and-join, f-strings with format specs,
io.StringIO, str methods (replace, split, strip, upper, center)."""
import io
import json
import sys
import time

NAME = "str_build"
DEFAULT_N = 18


def table(rows):
    out = io.StringIO()
    out.write("+" + "-" * 30 + "+\n")
    for i, (name, qty, price) in enumerate(rows):
        out.write(f"|{i:>4} {name:<12}{qty:>5} {price:>7.2f}|\n")
    out.write("+" + "-" * 30 + "+\n")
    return out.getvalue()


def csv_line(fields):
    parts = []
    for f in fields:
        s = str(f)
        if "," in s or '"' in s:
            s = '"' + s.replace('"', '""') + '"'
        parts.append(s)
    return ",".join(parts)


def work(n):
    check = 0
    for rep in range(n):
        acc = ""
        for i in range(6000):
            acc += "k%d=%s;" % (i, "v" * (i % 5))
        check += len(acc)
        rows = [("item-%d" % i, i % 17, i * 0.37) for i in range(3000)]
        check += len(table(rows))
        lines = [csv_line((i, "name, %d" % i, 'say "%d"' % rep, i / 3)) for i in range(4000)]
        blob = "\n".join(lines)
        check += sum(len(x.strip().upper()) for x in blob.split(","))
        words = blob.replace('"', "").split()
        check += len(" ".join(w.center(12, ".") for w in words[:3000]))
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
