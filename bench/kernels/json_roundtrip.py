"""JSON encode + decode of a nested document (C accelerator + Python glue)."""
import json
import sys
import time

NAME = "json_roundtrip"
DEFAULT_N = 200


def make_doc():
    items = []
    for i in range(200):
        items.append({
            "id": i,
            "name": "item-%d" % i,
            "tags": ["t%d" % (i % 7), "u%d" % (i % 11), "caf\u00e9"],
            "price": i * 1.25,
            "active": i % 3 == 0,
            "parent": None if i % 5 else i // 5,
            "dims": {"w": i % 13, "h": i % 17, "d": [1, 2, 3]},
        })
    return {"version": 3, "items": items, "note": "line\nbreak \"quoted\" \\ slash"}


def work(n):
    doc = make_doc()
    total = 0
    for _ in range(n):
        s = json.dumps(doc)
        back = json.loads(s)
        s2 = json.dumps(back, indent=1, sort_keys=True)
        total += len(s) + len(json.loads(s2)["items"])
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
