#!/usr/bin/env python3
"""`-c pass` of several commands side by side: wall time and the dynamic
loader's share (LD_DEBUG=statistics), interleaved (bench/images.py's loop).

usage: python3 bench/startup.py [--reps 40] NAME=COMMAND [NAME=COMMAND ...]

Each COMMAND is split on spaces and run with `-c pass` appended, e.g.
  python3 bench/startup.py eryx=build/bin/eryx \\
      native-pgo=$(bench/build-native-pgo.sh)
The last runner is the baseline of the ratios (put native last). Prints a
Markdown table.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images import interleaved  # noqa: E402


def loader_cycles(cmd, reps):
    """The dynamic loader's total start-up cycles, one per run."""
    out = []
    env = dict(os.environ, LD_DEBUG="statistics")
    for _ in range(reps):
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        m = re.search(r"total startup time in dynamic loader: (\d+) cycles", p.stderr)
        out.append(int(m.group(1)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("runners", nargs="+")
    a = ap.parse_args()
    runners = {}
    for r in a.runners:
        name, _, cmd = r.partition("=")
        runners[name] = (cmd.split() + ["-c", "pass"], dict(os.environ))
    load_before = open("/proc/loadavg").read().split()[:3]
    times = interleaved(runners, a.reps)
    base = list(runners)[-1]
    base_med = statistics.median(times[base])
    print("load average before / after: %s / %s" % (" ".join(load_before),
          " ".join(open("/proc/loadavg").read().split()[:3])))
    print()
    print("| runner | runs | median ms | min ms | vs %s (median) | loader M cycles (median, min of %d) |"
          % (base, max(5, a.reps // 4)))
    print("|---|---|---|---|---|---|")
    for n, (cmd, _) in runners.items():
        cyc = loader_cycles(cmd, max(5, a.reps // 4))
        print("| %s | %d | %.1f | %.1f | %.2f× | %.1f, %.1f |" % (
            n, len(times[n]), statistics.median(times[n]), min(times[n]),
            statistics.median(times[n]) / base_med, statistics.median(cyc) / 1e6, min(cyc) / 1e6))
    print()
    for n, (cmd, _) in runners.items():
        print("    %s: %s" % (n, " ".join(cmd)))


if __name__ == "__main__":
    main()
