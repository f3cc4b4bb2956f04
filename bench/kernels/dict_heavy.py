"""Dict-heavy code: counting with get/setdefault, nested dicts, tuple keys,
comprehensions, merges with |, key views, inverting, breadth-first search
over an adjacency dict."""
import json
import sys
import time

NAME = "dict_heavy"
DEFAULT_N = 28


def grid_graph(w, h):
    adj = {}
    for x in range(w):
        for y in range(h):
            nbrs = adj.setdefault((x, y), [])
            for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)):
                if 0 <= x + dx < w and 0 <= y + dy < h and (x * 7 + y * 3) % 11:
                    nbrs.append((x + dx, y + dy))
    return adj


def bfs(adj, start):
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            d = dist[node] + 1
            for m in adj[node]:
                if m not in dist:
                    dist[m] = d
                    nxt.append(m)
        frontier = nxt
    return dist


def work(n):
    adj = grid_graph(60, 60)
    check = 0
    for rep in range(n):
        dist = bfs(adj, (rep % 60, 0))
        check += max(dist.values())
        counts = {}
        for i in range(30000):
            k = "w%d" % (i * i % 1013)
            counts[k] = counts.get(k, 0) + 1
        inverse = {}
        for k, v in counts.items():
            inverse.setdefault(v, []).append(k)
        check += len(inverse)
        nested = {}
        for i in range(8000):
            nested.setdefault(i % 37, {}).setdefault(i % 11, {})[i] = i * rep
        check += sum(len(inner) for outer in nested.values() for inner in outer.values())
        left = {i: i for i in range(0, 6000, 2)}
        right = {i: -i for i in range(0, 6000, 3)}
        merged = left | right
        common = left.keys() & right.keys()
        squared = {k: v * v for k, v in merged.items() if k not in common}
        check += len(merged) + len(common) + len(squared)
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
