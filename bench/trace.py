#!/usr/bin/env python3
"""Line tracing's cost on the kernels, side by side: an earlier liberyx
(first sys.settrace, then a sys.monitoring callback in Python: the labels
name it) against this one (a sys.monitoring callback in C), each with and
without an on_trace that only counts (bench/bench_trace.c), and this
build's CLI with `--trace FILE` (JSON lines written to a file).

usage: python3 bench/trace.py --before BENCH_TRACE_OF_OLD_LIB [--rounds 2]
                              [--scale 0.1] [--repeats 2] [--kernels a,b]
                              [--trace-file /dev/null]
                              [--before-label settrace --after-label monitoring]
The before program is bench/bench_trace.c compiled against the older
liberyx.a (docs/performance.md says how). Interleaved kernel by kernel;
per (runner, kernel) the best over rounds of the kernel's in-process best;
prints a Markdown table of traced / untraced per kernel and the geomeans.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
from run import geomean, kernel_default_n  # noqa: E402


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-500:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=os.path.join(ROOT, "build", "bench", "bench_trace"))
    ap.add_argument("--eryx", default=os.path.join(ROOT, "build", "bin", "eryx"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--kernels", default="")
    ap.add_argument("--repeats", default="2")
    ap.add_argument("--trace-file", default="/dev/null")
    ap.add_argument("--before-label", default="settrace",
                    help="what the before library's tracing is (a column's name)")
    ap.add_argument("--after-label", default="monitoring")
    a = ap.parse_args()
    bl, al = a.before_label, a.after_label
    paths = sorted(glob.glob(os.path.join(BENCH, "kernels", "*.py")))
    if a.kernels:
        paths = [p for p in paths if os.path.basename(p)[:-3] in a.kernels.split(",")]
    # The CLI formats and writes every event; to /dev/null by default, so
    # that the disk (a traced kernel makes ~1 GB of JSON) is not measured.
    trace_file = a.trace_file
    runners = {
        "before off": lambda k, n: [a.before, k, n, a.repeats, "off"],
        "before on": lambda k, n: [a.before, k, n, a.repeats, "on"],
        "after off": lambda k, n: [a.after, k, n, a.repeats, "off"],
        "after on": lambda k, n: [a.after, k, n, a.repeats, "on"],
        "cli --trace": lambda k, n: [a.eryx, "--timeout", "0", "--trace", trace_file, k, n,
                                           a.repeats],
    }
    names = list(runners)
    best = {r: {} for r in names}
    events = {}
    load = open("/proc/loadavg").read().split()[:3]
    for rnd in range(a.rounds):
        for p in paths:
            k = os.path.basename(p)[:-3]
            n = str(max(1, round(kernel_default_n(p) * a.scale)))
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for r in order:
                out = run(runners[r](p, n))
                best[r][k] = min(best[r].get(k, 1e9), out["seconds"])
                if out.get("events"):
                    # Both libraries must report the same lines: a cheaper
                    # tracer that dropped events would look faster.
                    if events.setdefault(k, out["events"]) != out["events"]:
                        sys.exit("%s: %s reported %d line events, another run %d"
                                 % (k, r, out["events"], events[k]))
                print("round %d %-16s %-15s %.3f" % (rnd + 1, k, r, out["seconds"]),
                      file=sys.stderr)
    kernels = [os.path.basename(p)[:-3] for p in paths]
    print("load average before / after: %s / %s" % (
        " ".join(load), " ".join(open("/proc/loadavg").read().split()[:3])))
    print()
    print("| kernel | line events | %s: on / off | %s: on / off | "
          "CLI `--trace FILE` / %s off |" % (bl, al, al))
    print("|---|---|---|---|---|")
    cols = {"before": [], "after": [], "cli": []}
    for k in kernels:
        s = best["before on"][k] / best["before off"][k]
        m = best["after on"][k] / best["after off"][k]
        c = best["cli --trace"][k] / best["after off"][k]
        cols["before"].append(s)
        cols["after"].append(m)
        cols["cli"].append(c)
        print("| %s | %s | %.2f× | %.2f× | %.2f× |" % (k, format(events.get(k, 0), ","), s, m, c))
    print("| **geomean** | | **%.2f×** | **%.2f×** | **%.2f×** |" % (
        geomean(cols["before"]), geomean(cols["after"]), geomean(cols["cli"])))
    print("| max | | %.2f× | %.2f× | %.2f× |" % (
        max(cols["before"]), max(cols["after"]), max(cols["cli"])))


if __name__ == "__main__":
    main()
