#!/usr/bin/env python3
"""Runs two builds' bench_sandbox side by side, interleaved round by round
(the machine is shared and noisy: both see the same drifts), and prints a
Markdown table of every figure: median (min-max) over the rounds.

usage: bench/compare_sandbox.py BEFORE_BENCH_SANDBOX AFTER_BENCH_SANDBOX
                                [--rounds 4] [--label-before X] [--label-after Y]
"""
import argparse
import json
import statistics
import subprocess


def run(binary):
    out = subprocess.run([binary], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def fmt(x):
    return "%g" % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--label-before", default="before")
    ap.add_argument("--label-after", default="after")
    a = ap.parse_args()
    before, after = [], []
    for i in range(a.rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        pair = [(a.before, before), (a.after, after)]
        for binary, into in (pair if i % 2 == 0 else pair[::-1]):
            into.append(run(binary))
    print("| figure | %s: median (min–max) | %s: median (min–max) |" %
          (a.label_before, a.label_after))
    print("|---|---|---|")
    for k in before[0]:
        if k not in after[0]:
            continue
        b = [r[k] for r in before]
        n = [r[k] for r in after]
        print("| %s | %s (%s–%s) | %s (%s–%s) |" % (
            k, fmt(statistics.median(b)), fmt(min(b)), fmt(max(b)),
            fmt(statistics.median(n)), fmt(min(n)), fmt(max(n))))


if __name__ == "__main__":
    main()
