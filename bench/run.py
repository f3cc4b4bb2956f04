#!/usr/bin/env python3
"""Runs the eryx benchmark suite and writes BENCHMARKS.md.

Every kernel in bench/kernels/ is run, as a separate process, on each runner:

  native               CPython 3.13 built natively from the same source with
                       --enable-optimizations --with-lto (gcc PGO + LTO, as
                       distributions ship it; bench/build-native-pgo.sh): the baseline
  native-plain         the same source, gcc default -O3, no PGO/LTO (the guest
                       build's "build python"): an extra column
  eryx                 build/bin/eryx FILE  (CPython 3.13 -> wasm32-wasip1 -> wasm2c -> C)
  node-wasi            the stock python.wasm of the same WASI build (with the
                       guest's edit to sum(), guest/patch-cpython.py) under Node's
                       node:wasi (V8: Liftoff baseline + TurboFan tier-up)
  node-wasi-noliftoff  the same with `node --no-liftoff` (TurboFan only)
  pyodide              Pyodide from npm (CPython 3.14 via Emscripten) under Node

Runs are interleaved: round by round, kernel by kernel, runner by runner (the
runner order rotates every round). Each kernel times its hot part inside
Python with time.perf_counter() and reports the best of --repeats; for each
(runner, kernel) the report uses the median over --rounds of that number.
Process start (`-c pass`) is timed from outside, also interleaved.

usage: python3 bench/run.py [--rounds 3] [--repeats 3] [--scale 1.0]
                            [--runners native,eryx,...] [--kernels a,b,...]
                            [--start-reps 20] [--no-write]
Needs: build/bin/eryx (scripts/build.sh), node, bench/node_modules/pyodide
(bench/setup.sh), the native PGO+LTO build (bench/build-native-pgo.sh, run by
bench/setup.sh), gnuplot for the PNG plots (bench/setup.sh installs it); the
SVG plot of the ratios needs nothing.
"""
import argparse
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
KERNELS = os.path.join(BENCH, "kernels")
RESULTS = os.path.join(BENCH, "results")
WORK = os.path.join(BENCH, ".work")
ALL_RUNNERS = ["native", "native-plain", "eryx", "eryx-before", "node-wasi",
               "node-wasi-noliftoff", "pyodide"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True,
                          text=True, **kw).stdout.strip()


# ---------------------------------------------------------------- discovery

def guest_dir(args):
    if args.guest_dir:
        return args.guest_dir
    # The guest the CLI in build/ was configured with.
    cache = os.path.join(ROOT, "build", "CMakeCache.txt")
    if os.path.exists(cache):
        m = re.search(r"^ERYX_GUEST_DIR:PATH=(.*)$", open(cache).read(), re.M)
        if m and os.path.exists(os.path.join(m.group(1), "python-native.path")):
            return m.group(1)
    out = sh([os.path.join(ROOT, "guest", "build.sh")])
    return out.splitlines()[-1]


def find_tools(args):
    g = guest_dir(args)
    plain = open(os.path.join(g, "python-native.path")).read().strip()
    native = args.native or sh([os.path.join(BENCH, "build-native-pgo.sh"), "--path"])
    src = open(os.path.join(g, "python-src.path")).read().strip()
    wasi = os.path.join(os.path.dirname(src), "wasi")
    build_lib = glob.glob(os.path.join(wasi, "build", "lib.wasi-wasm32-*"))
    t = {
        "guest_dir": g,
        "native": native,
        "native-plain": plain,
        "src_lib": os.path.join(src, "Lib"),
        "wasi_python": os.path.join(wasi, "python.wasm"),
        "wasi_build_lib": build_lib[0] if build_lib else None,
        "eryx": os.path.join(ROOT, "build", "bin", "eryx"),
        # Another eryx binary (--eryx-before): a lever's before and after in
        # one interleaved run.
        "eryx-before": args.eryx_before,
        "node": shutil.which("node"),
        "pyodide": os.path.join(BENCH, "node_modules", "pyodide", "pyodide.mjs"),
    }
    # python.wasm carries ~22 MB of DWARF; V8 does not need it and it only
    # slows the module's load. Run a stripped copy (same code section).
    t["wasi_python_run"] = t["wasi_python"]
    if os.path.exists(t["wasi_python"]) and shutil.which("wasm-strip"):
        os.makedirs(WORK, exist_ok=True)
        dst = os.path.join(WORK, "python.wasm")
        if (not os.path.exists(dst)
                or os.path.getmtime(dst) < os.path.getmtime(t["wasi_python"])):
            shutil.copyfile(t["wasi_python"], dst + ".tmp")
            subprocess.run(["wasm-strip", dst + ".tmp"], check=True)
            os.replace(dst + ".tmp", dst)
        t["wasi_python_run"] = dst
    return t


def runner_cmd(name, t, script_args):
    """The command line that runs `python script_args...` on a runner.
    script_args[0] may be a kernel path (host) or '-c'."""
    a = list(script_args)
    if name in ("native", "native-plain"):
        return [t[name]] + a
    if name in ("eryx", "eryx-before"):
        return [t[name]] + a
    if name in ("node-wasi", "node-wasi-noliftoff"):
        if a and a[0].startswith(KERNELS):
            a[0] = "/kernels/" + os.path.relpath(a[0], KERNELS)
        flags = ["--no-liftoff"] if name == "node-wasi-noliftoff" else []
        return ([t["node"], "--no-warnings", "--stack-size=4000"] + flags +
                [os.path.join(BENCH, "node-wasi.mjs"), t["wasi_python_run"],
                 t["src_lib"], t["wasi_build_lib"],
                 "--map", KERNELS + ":/kernels",
                 "--map", os.path.join(WORK, "pycache") + ":/pycache"] + a)
    if name == "pyodide":
        return [t["node"], os.path.join(BENCH, "pyodide-run.mjs")] + a
    raise ValueError(name)


def runner_available(name, t):
    if name in ("native", "native-plain"):
        return bool(t[name]) and os.access(t[name], os.X_OK)
    if name in ("eryx", "eryx-before"):
        return bool(t[name]) and os.access(t[name], os.X_OK)
    if name.startswith("node-wasi"):
        return bool(t["node"] and os.path.exists(t["wasi_python_run"]) and t["wasi_build_lib"])
    if name == "pyodide":
        return bool(t["node"] and os.path.exists(t["pyodide"]))
    return False


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


# ---------------------------------------------------------------- measuring

def kernel_default_n(path):
    m = re.search(r"^DEFAULT_N = (\d+)$", open(path).read(), re.M)
    return int(m.group(1))


def run_kernel(name, t, path, n, repeats, timeout):
    cmd = runner_cmd(name, t, [path, str(n), str(repeats)])
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=clean_env(), cwd=BENCH)
    except subprocess.TimeoutExpired:
        return {"error": "timeout after %d s" % timeout}
    wall = time.perf_counter() - t0
    for line in reversed(p.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            r["wall"] = wall
            return r
    return {"error": "exit %d: %s" % (p.returncode, (p.stderr or p.stdout)[-400:])}


def time_start(name, t):
    """Wall time of one `-c pass` process."""
    cmd = runner_cmd(name, t, ["-c", "pass"])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=clean_env(), cwd=BENCH)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s -c pass failed: %s" % (name, p.stderr[-300:]))
    return wall


def peak_rss_kb(name, t):
    """Peak RSS of one `-c pass` process, via GNU time (a small parent: the
    child's ru_maxrss would otherwise start at this script's own RSS)."""
    gtime = "/usr/bin/time"
    if not os.access(gtime, os.X_OK):
        return None
    p = subprocess.run([gtime, "-f", "RSS=%M"] + runner_cmd(name, t, ["-c", "pass"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=clean_env(), cwd=BENCH)
    m = re.findall(r"RSS=(\d+)", p.stderr)
    return int(m[-1]) if m else None


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def paired(raw_a, raw_b):
    """A against B, round by round: per kernel the median over rounds of A's
    time / B's time in the same round, then the geomean over kernels, and on
    how many kernels A was faster. The two ran minutes apart at most within a
    round, so a slow spell of the shared host cancels out of the ratio, where
    it does not between the medians of each runner taken apart."""
    per_kernel = {}
    for k, ts in raw_a.items():
        pairs = [a / b for a, b in zip(ts, raw_b.get(k, [])) if a and b]
        if pairs:
            per_kernel[k] = statistics.median(pairs)
    return {"geomean": geomean(list(per_kernel.values())),
            "faster": sum(x < 1 for x in per_kernel.values()), "kernels": len(per_kernel)}


# ---------------------------------------------------------------- reporting

def machine_info():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "none (no commits yet)"
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain"])
    return {
        "nproc": sh(["nproc"]),
        "cpu": cpu,
        "mem": mem,
        "kernel": platform.release(),
        "os": sh("(. /etc/os-release && echo $PRETTY_NAME)"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (working tree has uncommitted changes)" if dirty else ""),
    }


def versions(t, runners):
    v = {}
    for r in ("native", "native-plain"):
        if r in runners:
            v[r] = sh([t[r], "-c", "import sys, sysconfig; g = sysconfig.get_config_var; "
                       "print('%s, CC=%s, OPT=%s, CONFIG_ARGS=%s' % (sys.version.split()[0], "
                       "g('CC'), g('OPT'), g('CONFIG_ARGS')))"])
    if "eryx" in runners:
        v["eryx"] = sh([t["eryx"], "--version"])
        try:
            h = hashlib.sha256(open(t["eryx"], "rb").read()).hexdigest()[:16]
            v["eryx"] += " (binary sha256 %s, guest %s)" % (h, os.path.basename(t["guest_dir"]))
        except OSError:
            pass
        try:
            # How guest/build.sh compiled the generated C.
            v["eryx"] += "; generated C compiled with " + open(
                os.path.join(t["guest_dir"], "config")).read().strip()
        except OSError:
            pass
    if any(r.startswith("node") or r == "pyodide" for r in runners):
        v["node"] = sh([t["node"], "--version"])
    if any(r.startswith("node-wasi") for r in runners):
        v["node-wasi"] = sh(runner_cmd("node-wasi", t, ["-c", "import sys; print(sys.version.split()[0])"]))
    if "pyodide" in runners:
        try:
            pj = json.load(open(os.path.join(BENCH, "node_modules", "pyodide", "package.json")))
            v["pyodide"] = "pyodide %s, Python %s" % (pj["version"], sh(runner_cmd(
                "pyodide", t, ["-c", "import sys; print(sys.version.split()[0])"])))
        except (OSError, ValueError, KeyError):
            pass
    return v


SVG_COLOURS = ["#4472c4", "#ed7d31", "#a5a5a5", "#ffc000", "#5b9bd5", "#70ad47", "#264478"]


def svg_ratios(res, kernels, runners, out_dir):
    """The per-kernel ratios to native as grouped bars, in plain SVG (no
    plotting library needed); a log scale, since node-wasi reaches 9x."""
    others = [r for r in runners if r != res.get("baseline", "native")]
    rows = kernels + ["GEOMEAN"]
    val = {(k, r): (res["geomean"].get(r) if k == "GEOMEAN" else res["ratio"].get(r, {}).get(k))
           for k in rows for r in others}
    top = max([v for v in val.values() if v] + [2.0])
    lo, hi = math.log(0.25), math.log(top * 1.1)
    left, width, bar, height, plot_h = 60, 0, 10, 0, 360
    group = bar * len(others) + 12
    width = max(720, left + group * len(rows) + 20)
    height = plot_h + 150

    def y(v):
        return 30 + plot_h * (1 - (math.log(v) - lo) / (hi - lo))

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="13">Time relative to %s CPython 3.13 '
           '(log scale; lower is better; dashed: 1 = native)</text>'
           % (left, "native PGO+LTO" if res.get("baseline", "native") == "native"
              else "native -O3 (no PGO/LTO)")]
    for t in (0.25, 0.5, 1, 2, 4, 8, 16):
        if t <= top * 1.1:
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" %s/>'
                       % (left, width - 20, y(t), y(t), 'stroke="#444" stroke-dasharray="4 3"'
                          if t == 1 else 'stroke="#ccc"'))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g×</text>'
                       % (left - 4, y(t) + 4, t))
    for i, k in enumerate(rows):
        x0 = left + 6 + i * group
        for j, r in enumerate(others):
            v = val[(k, r)]
            if v:
                out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s">'
                           '<title>%s %s %.2f×</title></rect>'
                           % (x0 + j * bar, min(y(v), y(1)), bar - 1, abs(y(1) - y(v)),
                              SVG_COLOURS[j % len(SVG_COLOURS)], k, r, v))
        out.append('<text transform="translate(%d,%d) rotate(45)">%s</text>'
                   % (x0 + 4, plot_h + 40, k))
    for j, r in enumerate(others):
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s'
                   '</text>' % (left + j * 150, height - 14, SVG_COLOURS[j % len(SVG_COLOURS)],
                                left + j * 150 + 14, height - 5, r))
    out.append("</svg>")
    path = os.path.join(out_dir, "ratios.svg")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


def plot(res, kernels, runners, start, out_dir):
    made = [svg_ratios(res, kernels, runners, out_dir)]
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no PNG plots (bench/setup.sh installs gnuplot-nox)")
        return made
    others = [r for r in runners if r != res.get("baseline", "native")]
    dat = os.path.join(WORK, "ratios.dat")
    os.makedirs(WORK, exist_ok=True)
    with open(dat, "w") as f:
        f.write("kernel " + " ".join(others) + "\n")
        for k in kernels + ["GEOMEAN"]:
            row = [k.replace("_", "-")]
            for r in others:
                x = res["geomean"].get(r) if k == "GEOMEAN" else res["ratio"].get(r, {}).get(k)
                row.append("%.4f" % x if x else "?")
            f.write(" ".join(row) + "\n")
    png = os.path.join(out_dir, "ratios.png")
    script = """
set terminal pngcairo size 1200,560 font ",10"
set output '%s'
set title 'Time relative to native CPython 3.13 (lower is better; 1 = native)'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -35 scale 0
set ylabel 'time / native time'
set yrange [0:*]
set grid ytics
set key top left
set datafile missing '?'
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#444444'
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (png, len(others) + 1, dat)
    if subprocess.run([gp], input=script, text=True).returncode == 0:
        made.append(png)
    if start:
        sdat = os.path.join(WORK, "start.dat")
        with open(sdat, "w") as f:
            for r in runners:
                if r in start:
                    f.write("%s %.3f\n" % (r, start[r]["median_ms"]))
        spng = os.path.join(out_dir, "start.png")
        script = """
set terminal pngcairo size 800,420 font ",10"
set output '%s'
set title 'Process start, `-c pass` (median wall time, ms, log scale)'
set style fill solid 0.85 border -1
set boxwidth 0.6
set logscale y
set yrange [1:*]
set grid ytics
set ylabel 'ms'
unset key
plot '%s' using 0:2:xtic(1) with boxes lc rgb '#4472c4', \\
     '' using 0:2:(sprintf('%%.1f', $2)) with labels offset 0,0.8
""" % (spng, sdat)
        if subprocess.run([gp], input=script, text=True).returncode == 0:
            made.append(spng)
    return made


def fmt_s(x):
    return "%.3f" % x if x is not None else "–"


SANDBOX_BENCH = os.path.join(ROOT, "build", "bench", "bench_sandbox")
COW_BENCH = os.path.join(ROOT, "build", "bench", "bench_cow")

# What the reference system (Eryx, Rust + wasmtime) publishes for the same
# operations; not measured here.
REFERENCE = {"sandbox_new_p50_us": "~16 ms (pre-initialised)",
             "recycled_new_p50_us": "~16 ms (pre-initialised)",
             "pass_p50_us": "~1.6 ms per execution"}


def sandbox_costs():
    """In-process costs from build/bench/bench_sandbox (bench/bench_sandbox.c)."""
    if not os.path.exists(SANDBOX_BENCH):
        return None
    out = subprocess.run([SANDBOX_BENCH, "20"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        log("bench_sandbox failed:", out.stderr[-500:])
        return None
    costs = json.loads(out.stdout.strip().splitlines()[-1])
    if os.path.exists(COW_BENCH):
        cow = subprocess.run([COW_BENCH, "50"], capture_output=True, text=True, timeout=600)
        if cow.returncode == 0:
            costs["cow"] = json.loads(cow.stdout.strip().splitlines()[-1])
        else:
            log("bench_cow failed:", cow.stderr[-500:])
    costs["when"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    costs["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()
    return costs


def write_sandbox_section(w, sandbox, start):
    rows = [("runtime creation (once per process)", "runtime_new_us", "µs"),
            ("sandbox creation, cold (no freed sandbox to reuse), p50", "sandbox_new_p50_us", "µs"),
            ("sandbox creation, cold, p99", "sandbox_new_p99_us", "µs"),
            ("first run (`pass`) in a cold new sandbox, p50", "first_run_p50_us", "µs"),
            ("sandbox creation reusing a freed one (create → run → free in turn), p50",
             "recycled_new_p50_us", "µs"),
            ("… p99", "recycled_new_p99_us", "µs"),
            ("first run (`pass`) in such a sandbox, p50", "recycled_first_run_p50_us", "µs"),
            ("`pass` in an existing sandbox, p50", "pass_p50_us", "µs"),
            ("`pass` in an existing sandbox, p99", "pass_p99_us", "µs"),
            ("`await noop()` round trip, p50 (timed in the guest)", "noop_roundtrip_p50_ns", "ns"),
            ("`await noop()` round trip, p99", "noop_roundtrip_p99_ns", "ns"),
            ("one run gathering 100 callbacks, p50", "gather100_p50_us", "µs"),
            ("pool: acquire (an idle, reset sandbox), p50", "pool_acquire_p50_us", "µs"),
            ("pool: acquire, p99", "pool_acquire_p99_us", "µs"),
            ("pool: first run (`pass`) after acquire, p50", "pool_first_run_p50_us", "µs"),
            ("pool: release (reset to the image, then a warm-up `pass`), p50",
             "pool_release_p50_us", "µs"),
            ("session used for fork/save/load: 500,000 strings + a dict, linear memory",
             "session_mb", "MB"),
            ("fork of that session after it ran (captures its memory), p50 of 5",
             "fork_p50_ms", "ms"),
            ("fork of the same unchanged session again (reuses the capture), p50 of 5",
             "fork_again_p50_us", "µs"),
            ("first run in a fork (`assert len(data) == turn`), p50 of 5",
             "fork_first_run_p50_ms", "ms"),
            ("save of that session to a file", "save_ms", "ms"),
            ("load of that session from the file", "load_ms", "ms"),
            ("private memory per idle sandbox (200 sandboxes, one `pass` each)",
             "idle_private_kb", "kB"),
            ("live sandboxes in 24 GiB (by that memory, capped by 8 GiB of address "
             "space each in a 47-bit space)", "live_sandboxes_24gib", ""),
            ("create → run `x = sum(range(100))` → free on 2 threads, per second",
             "create_run_free_per_s_2_threads", ""),
            ("eryx_sandbox_interrupt → run returns, Python loop (graceful), p50",
             "interrupt_python_p50_us", "µs"),
            ("… p99", "interrupt_python_p99_us", "µs"),
            ("eryx_sandbox_interrupt → run returns, stuck in C (hard, grace 1 ns), p50",
             "interrupt_c_p50_us", "µs"),
            ("… p99", "interrupt_c_p99_us", "µs")]
    w("## Sandbox costs (in process)")
    w("")
    w("From `build/bench/bench_sandbox 20` (bench/bench_sandbox.c), run by this script "
      "(%s, commit %s). Callbacks are `ERYX_CALLBACK_INLINE` handlers that reply "
      "`null` at once." % (sandbox.get("when", "?"), sandbox.get("commit", "?")))
    w("")
    w("| operation | eryx | reference system (published) |")
    w("|---|---|---|")
    for label, key, unit in rows:
        if key in sandbox:
            w("| %s | %s %s | %s |" % (label,
                                       "{:,.1f}".format(sandbox[key]).rstrip("0").rstrip("."),
                                       unit, REFERENCE.get(key, "")))
    if "native" in start:
        w("| for comparison: a fresh native CPython process, `-c pass` (process start "
          "table above) | %.1f ms | |" % start["native"]["median_ms"])
    w("")
    cow = sandbox.get("cow")
    if cow:
        write_cow_section(w, cow)


def write_cow_section(w, cow):
    w("### What a lazy fork would cost here")
    w("")
    w("From `build/bench/bench_cow %d` (bench/bench_cow.c), in the same run: the kernel "
      "primitives a copy-on-write fork of a %d MiB session would be built from, against "
      "the copy eryx_sandbox_fork makes (docs/sessions.md has the reasoning)."
      % (cow["mib"], cow["mib"]))
    w("")
    w("| primitive | cost |")
    w("|---|---|")
    rows = [("eryx's copy: pwrite of the memory into a memfd (first in the process)",
             "capture_pwrite_first_us", "µs"),
            ("eryx's copy: the same, later (best of 3)", "capture_pwrite_us", "µs"),
            ("write-protect the parent with userfaultfd (UFFDIO_WRITEPROTECT)",
             "uffd_writeprotect_us", "µs"),
            ("write-protect the parent with mprotect", "mprotect_readonly_us", "µs"),
            ("one page fault served by a userfaultfd thread (per page touched later)",
             "uffd_fault_round_trip_us_per_page", "µs"),
            ("one first-touch page fault (per page)", "first_touch_fault_us_per_page", "µs"),
            ("MADV_POPULATE_WRITE (per page)", "populate_write_us_per_page", "µs"),
            ("mremap moving the whole memory (page tables a PMD at a time)",
             "mremap_move_us", "µs")]
    for label, key, unit in rows:
        if key in cow:
            v = cow[key]
            w("| %s | %s |" % (label, "unavailable" if v < 0 else
                               "{:,.2f}".format(v).rstrip("0").rstrip(".") + " " + unit))
    w("")


def write_markdown(path, res, t, plots):
    info, vers, kernels, runners = res["machine"], res["versions"], res["kernels"], res["runners"]
    start, notes = res["start"], res["notes"]
    args = argparse.Namespace(**res["settings"])
    L = []
    w = L.append
    w("# eryx benchmarks")
    w("")
    w("Generated by `bench/run.py` (see [bench/README.md](bench/README.md)). Every number "
      "below comes from the run described here; nothing is copied from elsewhere.")
    w("")
    w("## Machine and settings")
    w("")
    w("- date: %s" % info["date"])
    w("- git commit: %s" % info["commit"])
    w("- CPU: %s, `nproc` = %s, memory %s" % (info["cpu"], info["nproc"], info["mem"]))
    w("- OS: %s, Linux %s" % (info["os"], info["kernel"]))
    w("- load average before / after the run: %s / %s" % (res["load_before"], res["load_after"]))
    w("- command: `%s`" % res["command"])
    if res.get("baseline", "native") != "native":
        w("- **baseline: %s** (the native PGO+LTO build was not available for this run; "
          "every ratio is to the plain build)" % res["baseline"])
    w("- settings: %d rounds, each kernel reports the best of %d in-process repeats "
      "(time.perf_counter() around the hot part); the table uses the **median over rounds** "
      "of that best; kernel N scaled by %g; runs interleaved kernel by kernel, runner by "
      "runner, runner order rotated each round; total wall time %.0f s"
      % (args.rounds, args.repeats, args.scale, res["elapsed"]))
    w("")
    w("Runners:")
    w("")
    desc = {
        "native": "CPython %s built natively from the same Debian source as the guest "
                  "with `--enable-optimizations --with-lto` (gcc PGO + LTO, as distributions "
                  "ship it; bench/build-native-pgo.sh): **the baseline**" % vers.get("native", "?"),
        "native-plain": "CPython %s, the same source built with gcc's default -O3, no PGO, no "
                        "LTO (the guest build's build python): an extra column, the baseline "
                        "of BENCHMARKS.md before issue 17" % vers.get("native-plain", "?"),
        "eryx": "`build/bin/eryx FILE`: %s" % vers.get("eryx", "?"),
        "eryx-before": "an earlier eryx binary (`--eryx-before %s FILE`), for a change's "
                       "before and after in one run" % t.get("eryx-before"),
        "node-wasi": "stock `python.wasm` of the same CPython WASI build (Python %s; "
                     "the guest's one edit to `sum()` included, guest/patch-cpython.py), "
                     "debug sections stripped, under Node %s `node:wasi` (V8 default: Liftoff "
                     "then TurboFan tier-up)" % (vers.get("node-wasi", "?"), vers.get("node", "?")),
        "node-wasi-noliftoff": "the same with `node --no-liftoff` (TurboFan only)",
        "pyodide": "%s (Emscripten) under Node %s, `loadPyodide()` from the npm package "
                   "directory, offline. Note: a newer CPython (3.14) than the others"
                   % (vers.get("pyodide", "?"), vers.get("node", "?")),
    }
    for r in runners:
        w("- **%s**: %s" % (r, desc[r]))
    w("")
    w("Exact commands (`KERNEL` is a file in bench/kernels/, `N REPEATS` its arguments):")
    w("")
    w("```")
    for r in runners:
        cmd = runner_cmd(r, t, [os.path.join(KERNELS, "KERNEL.py"), "N", "REPEATS"])
        w("%-20s %s" % (r + ":", " ".join(cmd)))
    w("```")
    w("")
    w("## Results: geometric mean of time / native time")
    w("")
    w("| runner | geomean vs native (medians) | min | max | geomean (best of rounds) "
      "| geomean (paired) |")
    w("|---|---|---|---|---|---|")
    for r in runners:
        rs = [x for x in res["ratio"].get(r, {}).values() if x]
        if rs:
            w("| %s | **%.2f×** | %.2f× | %.2f× | %.2f× | %.2f× |" % (
                r, res["geomean"][r], min(rs), max(rs), res["geomean_best"][r],
                res["paired"][r]["geomean"]))
    w("")
    w("*medians*: per kernel, the median over rounds of each run's in-process best, divided by "
      "native's; *best of rounds*: the same with the fastest round instead of the median; "
      "*paired*: per kernel, the median over rounds of the ratio within each round (the "
      "runners of a round run one after the other, so a slow spell of the host mostly "
      "cancels out), then the geomean.")
    w("")
    if "paired_before" in res:
        p = res["paired_before"]
        w("eryx against eryx-before, paired: **%.3f×**, eryx faster on %d of %d kernels."
          % (p["geomean"], p["faster"], p["kernels"]))
        w("")
    if plots:
        for p in plots:
            w("![%s](%s)" % (os.path.basename(p), os.path.relpath(p, ROOT)))
            w("")
    w("## Per kernel (seconds, median over rounds of best-of-%d; ratio to native in parentheses)"
      % args.repeats)
    w("")
    w("| kernel | N | " + " | ".join(runners) + " |")
    w("|---|---|" + "---|" * len(runners))
    for k in kernels:
        row = [k, str(res["n"][k])]
        for r in runners:
            s = res["seconds"].get(r, {}).get(k)
            if s is None:
                row.append("failed")
            elif r == res.get("baseline", "native"):
                row.append(fmt_s(s))
            else:
                row.append("%s (%.2f×)" % (fmt_s(s), res["ratio"][r][k]))
        w("| " + " | ".join(row) + " |")
    w("")
    w("Spread: the ratio of the slowest to the fastest round for each (runner, kernel) "
      "was at most %.2f (median %.2f)." % (res["spread_max"], res["spread_median"]))
    w("")
    if start:
        w("## Process start: `-c pass`")
        w("")
        w("Wall time of the whole process (fork/exec from Python to exit), interleaved, "
          "after one warm-up run each; peak RSS: median of 3 further runs under "
          "GNU `time -f %M`.")
        w("")
        w("| runner | runs | median ms | min ms | peak RSS MB |")
        w("|---|---|---|---|---|")
        for r in runners:
            if r in start:
                s = start[r]
                w("| %s | %d | %.1f | %.1f | %s |" % (
                    r, s["runs"], s["median_ms"], s["min_ms"],
                    "%.1f" % s["rss_mb"] if s["rss_mb"] else "?"))
        w("")
        w("```")
        for r in runners:
            if r in start:
                w("%-20s %s" % (r + ":", " ".join(runner_cmd(r, t, ["-c", "pass"]))))
        w("```")
        w("")
    if res.get("sandbox"):
        write_sandbox_section(w, res["sandbox"], res.get("start") or {})
    fuel_md = os.path.join(RESULTS, "fuel.md")
    if os.path.exists(fuel_md):  # written by bench/fuel.py
        for line in open(fuel_md).read().splitlines():
            w(line)
        w("")
    w("## Notes")
    w("")
    for n in notes:
        w("- " + n)
    w("")
    w("Kernels (bench/kernels/, each a standalone script printing one JSON line):")
    w("")
    for k in kernels:
        doc = ""
        src = open(os.path.join(KERNELS, k + ".py")).read()
        m = re.match(r'"""(.*?)"""', src, re.S)
        if m:
            doc = " ".join(m.group(1).split())
        w("- `%s`: %s" % (k, doc))
    w("")
    # Side-by-side comparisons (bench/compare_sandbox.py) are appended after
    # this marker and kept when the report is rewritten.
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        at = old.find(KEEP_MARKER)
        if at >= 0:
            kept = "\n" + old[at:]
    with open(path, "w") as f:
        f.write("\n".join(L) + kept)


KEEP_MARKER = "<!-- comparisons: kept by run.py -->"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="in-process repeats per kernel run")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every kernel's N")
    ap.add_argument("--runners", default=",".join(ALL_RUNNERS))
    ap.add_argument("--kernels", default="", help="comma-separated subset")
    ap.add_argument("--start-reps", type=int, default=20,
                    help="`-c pass` runs per runner (pyodide: a quarter, at least 3)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per kernel process")
    ap.add_argument("--guest-dir", default=os.environ.get("ERYX_GUEST_DIR"))
    ap.add_argument("--eryx-before", metavar="BIN",
                    help="an earlier eryx binary, the eryx-before runner (add it to --runners)")
    ap.add_argument("--native", help="the baseline python (default: bench/build-native-pgo.sh's)")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true", help="print results only")
    ap.add_argument("--no-sandbox", action="store_true",
                    help="skip the in-process sandbox costs (bench_sandbox, bench_cow)")
    ap.add_argument("--report-only", metavar="RESULTS_JSON",
                    help="no runs: rewrite the report (and plots) from a results.json")
    ap.add_argument("--sandbox-only", action="store_true",
                    help="re-measure only the in-process sandbox costs into "
                         "bench/results/results.json and rewrite the report")
    args = ap.parse_args()

    t = find_tools(args)
    if args.sandbox_only:
        path = os.path.join(RESULTS, "results.json")
        res = json.load(open(path))
        res["sandbox"] = sandbox_costs()
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
        args.report_only = path
    if args.report_only:
        res = json.load(open(args.report_only))
        # The report prints each runner's command: the earlier binary's path
        # is in the results when not given again.
        t["eryx-before"] = t.get("eryx-before") or res.get("settings", {}).get("eryx_before")
        summarise(res)
        report(res, t, args.out)
        return
    os.makedirs(os.path.join(WORK, "pycache"), exist_ok=True)
    runners = []
    for r in args.runners.split(","):
        if r not in ALL_RUNNERS:
            sys.exit("unknown runner %r (have %s)" % (r, ", ".join(ALL_RUNNERS)))
        if runner_available(r, t):
            runners.append(r)
        else:
            log("runner %s is not available here: skipped" % r)
    # The baseline: native PGO+LTO; the plain build only when that one is
    # not built (the report says which).
    baseline = "native" if "native" in runners else "native-plain"
    if baseline not in runners:
        sys.exit("a native runner is needed as the baseline (bench/build-native-pgo.sh)")
    kernels = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(KERNELS, "*.py")))
    if args.kernels:
        want = args.kernels.split(",")
        kernels = [k for k in kernels if k in want]
    ns = {k: max(1, int(round(kernel_default_n(os.path.join(KERNELS, k + ".py")) * args.scale)))
          for k in kernels}

    info = machine_info()
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    t_start = time.time()
    vers = versions(t, runners)
    log("runners:", ", ".join(runners))
    for k, v in vers.items():
        log("  %s: %s" % (k, v))

    # Warm-up: one short run per runner (fills node-wasi's .pyc cache, OS caches).
    for r in runners:
        run_kernel(r, t, os.path.join(KERNELS, kernels[0] + ".py"), 1, 1, args.timeout)

    raw = {r: {k: [] for k in kernels} for r in runners}
    checks = {k: {} for k in kernels}
    failures = []
    for rnd in range(args.rounds):
        order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
        for k in kernels:
            path = os.path.join(KERNELS, k + ".py")
            for r in order:
                out = run_kernel(r, t, path, ns[k], args.repeats, args.timeout)
                if "error" in out:
                    failures.append("%s / %s (round %d): %s" % (r, k, rnd + 1, out["error"]))
                    log("  FAIL", r, k, out["error"])
                    continue
                raw[r][k].append(out["seconds"])
                checks[k].setdefault(json.dumps(out.get("check")), []).append(r)
                log("round %d  %-15s %-20s %.4f s" % (rnd + 1, k, r, out["seconds"]))

    # Process start, interleaved.
    start = {}
    st = {r: [] for r in runners}
    for r in runners:
        time_start(r, t)  # warm-up
    reps = args.start_reps
    for i in range(reps):
        for r in runners:
            if r == "pyodide" and i >= max(3, reps // 4):
                continue
            st[r].append(time_start(r, t))
    for r in runners:
        if st[r]:
            rss = [x for x in (peak_rss_kb(r, t) for _ in range(3)) if x]
            start[r] = {"runs": len(st[r]), "median_ms": 1000 * statistics.median(st[r]),
                        "min_ms": 1000 * min(st[r]),
                        "rss_mb": statistics.median(rss) / 1024 if rss else None}
    log("start:", {r: round(v["median_ms"], 1) for r, v in start.items()})

    sandbox = {} if args.no_sandbox else sandbox_costs()
    res = {
        "sandbox": sandbox,
        "command": " ".join(["python3", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "kernels": kernels, "runners": runners,
        "n": ns, "raw": raw, "start": start, "checks": checks, "failures": failures,
        "baseline": baseline,
        "elapsed": time.time() - t_start,
        "load_before": load_before,
        "load_after": " ".join(open("/proc/loadavg").read().split()[:3]),
        "machine": info, "versions": vers, "settings": vars(args),
    }
    summarise(res)
    for r in runners:
        log("%-20s geomean %.3f (best-of-rounds %.3f, paired %.3f)"
            % (r, res["geomean"].get(r, float("nan")), res["geomean_best"].get(r, float("nan")),
               res["paired"][r]["geomean"]))
    if "paired_before" in res:
        p = res["paired_before"]
        log("eryx / eryx-before, paired: %.3f, eryx faster on %d of %d kernels"
            % (p["geomean"], p["faster"], p["kernels"]))
    if args.no_write:
        json.dump(res, sys.stdout, indent=1)
        return
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    report(res, t, args.out)


def summarise(res):
    """Derived numbers (medians, ratios, geomeans) and the automatic notes."""
    raw, runners, base = res["raw"], res["runners"], res.get("baseline", "native")
    seconds = {r: {k: statistics.median(v) for k, v in raw[r].items() if v} for r in runners}
    best = {r: {k: min(v) for k, v in raw[r].items() if v} for r in runners}
    ratio = {r: {k: seconds[r][k] / seconds[base][k] for k in seconds[r]
                 if k in seconds[base]} for r in runners}
    ratio_best = {r: {k: best[r][k] / best[base][k] for k in best[r]
                      if k in best[base]} for r in runners}
    res["seconds"], res["best"], res["ratio"], res["ratio_best"] = seconds, best, ratio, ratio_best
    res["geomean"] = {r: geomean(list(ratio[r].values())) for r in runners if ratio[r]}
    res["geomean_best"] = {r: geomean(list(ratio_best[r].values())) for r in runners if ratio_best[r]}
    res["paired"] = {r: paired(raw[r], raw[base]) for r in runners}
    if "eryx" in runners and "eryx-before" in runners:
        res["paired_before"] = paired(raw["eryx"], raw["eryx-before"])
    spreads = {(r, k): max(v) / min(v) for r in runners for k, v in raw[r].items() if len(v) > 1}
    res["spread_max"] = max(spreads.values()) if spreads else 1.0
    res["spread_median"] = statistics.median(spreads.values()) if spreads else 1.0

    notes = []
    checks = res["checks"]
    for k, c in checks.items():
        if len(c) > 1:
            notes.append("kernel %s returned different check values: %s" % (k, c))
    if not any(len(c) > 1 for c in checks.values()):
        notes.append("Every kernel returned the same check value on every runner.")
    for f in res["failures"]:
        notes.append("failure: " + f)
    faster = ["%s on %s (%.2f×)" % (r, k, x) for r in runners if r != base
              for k, x in sorted(ratio[r].items()) if x < 1.0]
    if faster:
        notes.append("Faster than native (median ratio below 1): " + "; ".join(faster) +
                     ". See 'Known effects' in bench/README.md.")
    noisy = sorted(((x, r, k) for (r, k), x in spreads.items() if x > 1.5), reverse=True)
    if noisy:
        notes.append("%d of %d (runner, kernel) pairs had rounds disagreeing by more than 1.5× "
                     "(slowest/fastest); the worst: " % (len(noisy), len(spreads)) + "; ".join(
                         "%s/%s %.2f× %s" % (r, k, x, [round(y, 3) for y in raw[r][k]])
                         for x, r, k in noisy[:6]) + " (all raw numbers: bench/results/results.json).")
    notes.append("Times are of the hot part only, measured inside Python; process start, "
                 "module compilation (V8) and interpreter start-up are excluded from the "
                 "kernel numbers and measured separately under 'Process start'.")
    notes.append("The machine has %s cores; the load average above shows what else was running. "
                 "Interleaving spreads that noise over all runners; the median over rounds and "
                 "the best-of-rounds geomean bracket it, and the paired geomean (ratios within "
                 "each round) mostly cancels a slow spell that hit one round." % res["machine"]["nproc"])
    res["notes"] = notes


def report(res, t, out):
    plots = plot(res, res["kernels"], res["runners"], res["start"], RESULTS)
    write_markdown(out, res, t, plots)
    log("wrote", out)

if __name__ == "__main__":
    main()
