#!/usr/bin/env python3
"""`await noop()` round trips, builds side by side.

Runs build/bench/bench_callback once per library per round, interleaved
(each label is a directory holding a liberyx.so.0, put first on
LD_LIBRARY_PATH), and prints the median over rounds of each run's p50 and
p99 (ns, timed in the guest).

usage: bench/callback.py [--rounds N] [--calls N] [--args PY] LABEL=LIBDIR ...
(--args: the call's arguments as Python source, e.g. "query='x', limit=10")
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "build", "bench", "bench_callback")


def one(libdir, calls, args):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    out = subprocess.run([BENCH, str(calls), "3", args], env=env, check=True,
                         capture_output=True, text=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--args", default="")
    ap.add_argument("libs", nargs="+", metavar="LABEL=LIBDIR")
    a = ap.parse_args()
    libs = [s.split("=", 1) for s in a.libs]
    if any(len(x) != 2 or not os.path.isdir(x[1]) for x in libs):
        sys.exit("each argument is LABEL=DIRECTORY (holding liberyx.so.0)")
    got = {label: [] for label, _ in libs}
    for _ in range(a.rounds):
        for label, d in libs:
            got[label].append(one(d, a.calls, a.args))
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| build | p50, ns (median of rounds) | p50 per round | p99, ns |")
    print("|---|---|---|---|")
    for label, rows in got.items():
        p50s = [r[0] for r in rows]
        print(f"| {label} | {statistics.median(p50s):,.0f} | "
              f"{' · '.join(f'{x:,.0f}' for x in p50s)} | "
              f"{statistics.median(r[1] for r in rows):,.0f} |")


if __name__ == "__main__":
    main()
