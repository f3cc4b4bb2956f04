"""Compares builds of eryx (or any runner taking `KERNEL.py N REPEATS`) on
the kernel suite: interleaved kernel by kernel, runner by runner, with the
runner order rotated every round; each cell is the best of ROUNDS of the
kernel's own in-process best-of-3. Ratios are to the first runner. This is
how the levers in docs/performance.md were measured.

usage: python3 bench/compare.py [--rounds R] [--kernels a,b] NAME=COMMAND ...
  e.g. python3 bench/compare.py native="$(cat build/guest/python-native.path)" \\
           eryx=build/bin/eryx pgo=/tmp/pgo/build/bin/eryx
COMMAND is split on spaces; `--timeout 0` is added to commands ending in
`eryx`."""

import argparse
import json
import math
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KDIR = os.path.join(ROOT, "bench", "kernels")


def default_n(kernel):
    for line in open(os.path.join(KDIR, kernel + ".py")):
        if line.startswith("DEFAULT_N = "):
            return int(line.split("=")[1])
    raise SystemExit("%s.py has no DEFAULT_N" % kernel)


def seconds(cmd, kernel):
    out = subprocess.run(cmd + [os.path.join(KDIR, kernel + ".py"), str(default_n(kernel)), "3"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernels", help="comma-separated subset (default: all)")
    ap.add_argument("runners", nargs="+", metavar="NAME=COMMAND")
    a = ap.parse_args()
    runners = {}
    for spec in a.runners:
        name, _, cmd = spec.partition("=")
        argv = cmd.split()
        if argv[0].endswith("eryx"):
            argv += ["--timeout", "0"]
        runners[name] = argv
    kernels = a.kernels.split(",") if a.kernels else sorted(
        f[:-3] for f in os.listdir(KDIR) if f.endswith(".py"))
    names = list(runners)
    best = {}
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in kernels:
            for name in order:
                t = seconds(runners[name], k)
                best[(k, name)] = min(t, best.get((k, name), t))
    base = names[0]
    print("| kernel | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    logs = {n: 0.0 for n in names}
    for k in kernels:
        cells = []
        for n in names:
            ratio = best[(k, n)] / best[(k, base)]
            logs[n] += math.log(ratio)
            cells.append("%.3f (%.2f×)" % (best[(k, n)], ratio))
        print("| %s | %s |" % (k, " | ".join(cells)))
    print("| **geomean** | " + " | ".join(
        "**%.2f×**" % math.exp(logs[n] / len(kernels)) for n in names) + " |")


if __name__ == "__main__":
    main()
