"""Word counting: str.split/lower/strip, dict get/set, sorting by count."""
import json
import sys
import time

NAME = "wordcount"
DEFAULT_N = 25

WORDS = ("the quick brown fox jumps over the lazy dog while a cat watches "
         "from the old stone wall and the river runs past the mill where "
         "Millers once ground wheat into Flour, Bread, and Dreams; then "
         "everyone went home.").split()


def make_text():
    lines = []
    k = 0
    for i in range(2000):
        line = []
        for j in range(12):
            k = (k * 1103515245 + 12345) & 0x7fffffff
            line.append(WORDS[k % len(WORDS)])
        lines.append(" ".join(line))
    return "\n".join(lines)


def count(text):
    counts = {}
    for line in text.splitlines():
        for w in line.split():
            w = w.strip(".,;:!?").lower()
            if w:
                counts[w] = counts.get(w, 0) + 1
    return counts


def bigrams(text):
    counts = {}
    words = text.lower().split()
    for a, b in zip(words, words[1:]):
        key = a + " " + b
        if key in counts:
            counts[key] += 1
        else:
            counts[key] = 1
    return counts


def work(n):
    text = make_text()
    top = None
    for _ in range(n):
        c = count(text)
        bg = bigrams(text)
        top = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        top.append(max(bg.items(), key=lambda kv: (kv[1], kv[0])))
    return [list(t) for t in top]


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
