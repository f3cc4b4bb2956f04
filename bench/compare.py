"""Compares builds of eryx (or any runner taking `KERNEL.py N REPEATS`) on
the kernel suite: interleaved kernel by kernel, runner by runner, with the
runner order rotated every round; each cell is the best of ROUNDS of the
kernel's own in-process best-of-3. Ratios are to the first runner. This is
how the levers in docs/performance.md were measured. The last line is the
paired geomean (as bench/run.py's): per kernel, the median over rounds of
the ratio within one round, where a slow spell of the shared host mostly
cancels out; with the number of kernels on which the runner was faster.

usage: python3 bench/compare.py [--rounds R] [--kernels a,b] NAME=COMMAND ...
  e.g. python3 bench/compare.py native="$(cat build/guest/python-native.path)" \\
           eryx=build/bin/eryx pgo=/tmp/pgo/build/bin/eryx
COMMAND is split on spaces; `--timeout 0` is added to commands ending in
`eryx`."""

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile

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


def parse_runners(specs):
    """NAME=COMMAND arguments as {name: argv}, in order; a command ending in
    `eryx` runs without the CLI's default time limit."""
    runners = {}
    for spec in specs:
        name, _, cmd = spec.partition("=")
        argv = cmd.split()
        if argv[0].endswith("eryx"):
            argv += ["--timeout", "0"]
        runners[name] = argv
    return runners



# The in-process timing of the scripts whose CASES map a name to
# (operation, how many times one timing repeats it): the best of 3 timings,
# in microseconds per operation. cases_side_by_side appends it to the
# script's own text, since a sandbox sees only the file it runs.
REPEAT_WORKER = """

def _repeat_worker():
    import json
    import time
    best = {}
    for name, (op, repeat) in CASES.items():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(repeat):
                op()
            times.append((time.perf_counter() - t0) / repeat)
        best[name] = min(times) * 1e6
    print(json.dumps(best))


_repeat_worker()
"""


def cases_side_by_side(script, cases, description, worker=None):
    """The driver of the scripts that time named cases in-process
    (bench/wide_ints.py, bench/compile_fstrings.py, bench/string_scans.py,
    bench/text_decode.py, bench/iter_parts.py): runs SCRIPT --worker under
    each NAME=COMMAND of the command line, ROUNDS rounds with the order
    rotated; the worker prints one JSON object, case -> time (in the unit
    its script's usage names). With WORKER (REPEAT_WORKER), the script is
    run with that text appended, and must skip its own driver under
    --worker. Prints a Markdown table: per case the best of the rounds of
    each runner, and its ratio to the first runner."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("runners", nargs="+", metavar="NAME=COMMAND")
    a = ap.parse_args()
    runners = parse_runners(a.runners)
    names = list(runners)
    best = {}
    with tempfile.NamedTemporaryFile("w", suffix=".py") as tmp:
        if worker:
            with open(script) as f:
                tmp.write(f.read() + worker)
            tmp.flush()
            script = tmp.name
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                out = subprocess.run(runners[name] + [os.path.abspath(script), "--worker"],
                                     check=True, capture_output=True, text=True).stdout
                for case, t in json.loads(out.strip().splitlines()[-1]).items():
                    key = (case, name)
                    best[key] = min(best.get(key, t), t)
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case in cases:
        base = best[(case, names[0])]
        cells = ["%.2f (%.2f×)" % (best[(case, n)], best[(case, n)] / base)
                 for n in names]
        print("| %s | %s |" % (case, " | ".join(cells)))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernels", help="comma-separated subset (default: all)")
    ap.add_argument("runners", nargs="+", metavar="NAME=COMMAND")
    a = ap.parse_args()
    runners = parse_runners(a.runners)
    kernels = a.kernels.split(",") if a.kernels else sorted(
        f[:-3] for f in os.listdir(KDIR) if f.endswith(".py"))
    names = list(runners)
    best = {}
    rounds = {}  # (kernel, runner) -> the time of each round
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in kernels:
            for name in order:
                t = seconds(runners[name], k)
                best[(k, name)] = min(t, best.get((k, name), t))
                rounds.setdefault((k, name), []).append(t)
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
    print("| paired (faster on) | " + " | ".join(paired(rounds, kernels, base, n)
                                                 for n in names) + " |")


def paired(rounds, kernels, base, name):
    """Geomean over kernels of the median within-round ratio name/base."""
    ratios = [statistics.median(t / b for t, b in zip(rounds[(k, name)], rounds[(k, base)]))
              for k in kernels]
    faster = sum(r < 1 for r in ratios)
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return "%.3f× (%d/%d)" % (gm, faster, len(kernels))


if __name__ == "__main__":
    main()
