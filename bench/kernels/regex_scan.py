"""Regular-expression scanning: findall, finditer with groups, sub()."""
import json
import re
import sys
import time

NAME = "regex_scan"
DEFAULT_N = 40


def make_text():
    words = ["alpha", "beta", "gamma", "delta", "x1y2", "user@example.com",
             "192.168.0.1", "2024-05-17", "foo_bar", "BAZ", "http://a.b/c?d=e"]
    parts = []
    for i in range(6000):
        parts.append(words[(i * 7) % len(words)])
        if i % 13 == 0:
            parts.append("\n")
    return " ".join(parts)


RE_WORD = re.compile(r"\b[a-z]+\b")
RE_EMAIL = re.compile(r"([\w.]+)@([\w.]+)\.(com|org|net)")
RE_IP = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
RE_DATE = re.compile(r"(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)")
RE_URL = re.compile(r"https?://[^\s]+")


def work(n):
    text = make_text()
    total = 0
    for _ in range(n):
        total += len(RE_WORD.findall(text))
        for m in RE_EMAIL.finditer(text):
            total += len(m.group(2))
        for m in RE_IP.finditer(text):
            total += int(m.group(4))
        total += len(RE_DATE.sub(lambda m: m["d"] + "/" + m["m"] + "/" + m["y"], text))
        total += len(RE_URL.findall(text))
        total += len(re.split(r"\s+", text))
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
