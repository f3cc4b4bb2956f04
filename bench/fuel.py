"""The cost of counting fuel: the same kernels on the default build and on
the fuel-counting build (ERYX_GUEST_FUEL=1: build-fuel/), interleaved,
best of ROUNDS. Writes bench/results/fuel.md, which run.py includes in
BENCHMARKS.md.  usage: python3 bench/fuel.py [ROUNDS]"""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = ["fib", "richards", "nbody", "generators", "json_roundtrip", "regex_scan"]
RUNNERS = {
    "default": [os.path.join(ROOT, "build", "bin", "eryx"), "--timeout", "0"],
    "fuel counted": [os.path.join(ROOT, "build-fuel", "bin", "eryx"), "--timeout", "0"],
    "fuel limit set": [os.path.join(ROOT, "build-fuel", "bin", "eryx"), "--timeout", "0",
                       "--fuel", "1000000000000"],
}


def seconds(cmd, kernel):
    out = subprocess.run(cmd + [os.path.join(ROOT, "bench", "kernels", kernel + ".py")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    best = {}
    for _ in range(rounds):
        for k in KERNELS:
            for name, cmd in RUNNERS.items():
                t = seconds(cmd, k)
                best[(k, name)] = min(t, best.get((k, name), t))
    config = ""
    try:
        cache = open(os.path.join(ROOT, "build-fuel", "CMakeCache.txt")).read()
        gdir = [l.split("=", 1)[1] for l in cache.splitlines() if l.startswith("ERYX_GUEST_DIR:")][0]
        config = " Its generated C: " + open(os.path.join(gdir, "config")).read().strip() + "."
    except (OSError, IndexError):
        pass
    lines = ["## Cost of the fuel-counting build", "",
             "`python3 bench/fuel.py %d`: the same kernels on the default build and on the "
             "fuel-counting build that scripts/test makes (`ERYX_GUEST_FUEL=1 "
             "ERYX_GUEST_SEGMENT=0 ERYX_GUEST_PGO=0`, build-fuel/), interleaved, best of %d (seconds; ratio to "
             "the default build).%s That build also goes without the %%gs segment and PGO, "
             "so the ratio is the counter plus their absence (docs/limits.md)."
             % (rounds, rounds, config), "",
             "| kernel | " + " | ".join(RUNNERS) + " |", "|---|" + "---|" * len(RUNNERS)]
    logs = {name: 0.0 for name in RUNNERS}
    for k in KERNELS:
        base = best[(k, "default")]
        cells = []
        for name in RUNNERS:
            t = best[(k, name)]
            logs[name] += math.log(t / base)
            cells.append("%.3f (%.2f×)" % (t, t / base))
        lines.append("| %s | %s |" % (k, " | ".join(cells)))
    lines.append("| **geomean** | " + " | ".join(
        "**%.2f×**" % math.exp(logs[n] / len(KERNELS)) for n in RUNNERS) + " |")
    lines.append("")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "fuel.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
