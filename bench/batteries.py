#!/usr/bin/env python3
"""SQLite and zlib in eryx against native CPython, side by side in one run.

Runs bench/batteries/sqlite_rows.py and zlib_mb.py (each prints one JSON
line with its in-process times; sqlite_vfs.py there is run alone, its
docstring says how) on each runner, interleaved round by round with the runner order
rotated, and prints a Markdown section: per kernel and runner the median
over rounds of the in-process best, and the ratio to native.

  native   the guest build's build python (python-native.path): CPython 3.13
           from the same source, gcc -O3, linked with the build machine's
           zlib and SQLite (Debian 12's)
  eryx     build/bin/eryx (the guest's zlib and SQLite: guest/clibs/list)
  node-wasi  the WASI build's python.wasm under Node (optional, --runners)

usage: python3 bench/batteries.py [--rounds 3] [--repeats 3] [--rows 100000]
                                  [--mb 50] [--runners native,eryx]
                                  [--guest-dir DIR] [--write]
--write puts the section into BENCHMARKS.md (replacing the previous one),
after the comparisons marker that bench/run.py keeps.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
KERNELS = os.path.join(BENCH, "batteries")
BEGIN = "<!-- batteries: bench/batteries.py -->"
END = "<!-- end batteries -->"


def guest_dir(args):
    if args.guest_dir:
        return args.guest_dir
    cache = os.path.join(ROOT, "build", "CMakeCache.txt")
    m = re.search(r"^ERYX_GUEST_DIR:PATH=(.*)$", open(cache).read(), re.M)
    if not m:
        sys.exit("batteries.py: build/ is not configured; give --guest-dir")
    return m.group(1)


def cases(args):
    """(label, script, argv) of every measurement."""
    return [
        (f"SQLite, {args.rows} rows, :memory:", "sqlite_rows.py", [str(args.rows), str(args.repeats), "memory"]),
        (f"SQLite, {args.rows} rows, file in /tmp", "sqlite_rows.py", [str(args.rows), str(args.repeats), "file"]),
        (f"zlib, {args.mb} MB", "zlib_mb.py", [str(args.mb), str(args.repeats)]),
    ]


def command(runner, tools, script, argv):
    path = os.path.join(KERNELS, script)
    if runner == "native":
        return [tools["native"], path] + argv
    if runner == "eryx":
        # 50 MB in, the compressed copy and the 50 MB out: more than the
        # default 128 MiB of linear memory.
        return [tools["eryx"], "--timeout", "0", "--max-memory", "1G", path] + argv
    if runner == "node-wasi":
        wasi = tools["wasi"]
        return ["node", "--no-warnings", "--stack-size=4000", os.path.join(BENCH, "node-wasi.mjs"),
                os.path.join(wasi, "python.wasm"), os.path.join(tools["src"], "Lib"),
                [os.path.join(wasi, "build", d) for d in os.listdir(os.path.join(wasi, "build"))
                 if d.startswith("lib.wasi")][0],
                "--map", KERNELS + ":/kernels", "/kernels/" + script] + argv
    raise ValueError(runner)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--runners", default="native,eryx")
    ap.add_argument("--guest-dir")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    g = guest_dir(args)
    src = open(os.path.join(g, "python-src.path")).read().strip()
    tools = {
        "native": open(os.path.join(g, "python-native.path")).read().strip(),
        "eryx": os.path.join(ROOT, "build", "bin", "eryx"),
        "src": src,
        "wasi": os.path.join(os.path.dirname(src), "wasi"),
    }
    runners = args.runners.split(",")
    # The commit measured: read before the run, which may take minutes.
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    load_before = open("/proc/loadavg").read().split()[:3]
    results = {}   # (label, runner) -> list of the rounds' JSON
    t_start = datetime.datetime.now(datetime.timezone.utc)
    for rnd in range(args.rounds):
        for label, script, argv in cases(args):
            order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
            for runner in order:
                cmd = command(runner, tools, script, argv)
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"batteries.py: {runner} {script} failed ({p.returncode}):\n"
                             f"{p.stderr[-2000:]}")
                line = json.loads(p.stdout.strip().splitlines()[-1])
                results.setdefault((label, runner), []).append(line)
                print(f"round {rnd + 1} {runner:9} {label}: {line['seconds']:.3f} s",
                      file=sys.stderr, flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    # Every runner must compute the same thing.
    for label, _, _ in cases(args):
        checks = {r: {x["check"] for x in results[(label, r)]} for r in runners}
        if len({c for s in checks.values() for c in s}) != 1:
            sys.exit(f"batteries.py: {label}: runners disagree: {checks}")

    def med(label, runner, field):
        return statistics.median(x[field] for x in results[(label, runner)])

    first = {r: results[(cases(args)[0][0], r)][0] for r in runners}
    zl = {r: results[(cases(args)[2][0], r)][0] for r in runners}
    out = [BEGIN, "## SQLite and zlib: eryx against native CPython (side by side)", ""]
    out.append(f"- date: {t_start:%Y-%m-%d %H:%M} UTC; commit {commit}"
               f"{' (uncommitted changes)' if dirty else ''}; machine: {platform.machine()}, "
               f"`nproc` = {os.cpu_count()}, {platform.system()} {platform.release()}")
    out.append(f"- load average before / after: {' '.join(load_before)} / {' '.join(load_after)}")
    out.append(f"- command: `python3 bench/batteries.py --rounds {args.rounds} --repeats {args.repeats} "
               f"--rows {args.rows} --mb {args.mb} --runners {args.runners}`")
    out.append("- method: each kernel (bench/batteries/) times its parts inside Python with "
               "`time.perf_counter()` and reports the best of its repeats; the table gives the "
               "median over rounds of that best; runs interleaved, runner order rotated each round")
    for r in runners:
        out.append(f"- {r}: SQLite {first[r].get('sqlite')}, zlib {zl[r].get('zlib')} "
                   f"(compressed size {zl[r].get('packed')} bytes)")
    out.append("")
    out.append("| measurement | part | " + " | ".join(runners) + " |")
    out.append("|---|---|" + "---|" * len(runners))
    for label, script, _ in cases(args):
        parts = ["insert", "query"] if script.startswith("sqlite") else ["compress", "decompress"]
        for part in parts + ["seconds"]:
            base = med(label, "native", part) if "native" in runners else None
            cells = []
            for r in runners:
                v = med(label, r, part)
                ratio = f" ({v / base:.2f}×)" if base and r != "native" else ""
                cells.append(f"{v:.3f}{ratio}")
            name = "total" if part == "seconds" else part
            out.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    out.append(END)
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        doc = open(path).read()
        if BEGIN in doc:
            doc = doc[:doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) + 1:]
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        with open(path + ".tmp", "w") as f:
            f.write(doc)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
