#!/usr/bin/env python3
"""Process start with the cached image, and jinja2 with and without an image
that pre-imports it, side by side with native CPython (docs/packages.md).

usage: python3 bench/images.py [--build BUILD] [--native PYTHON] [--reps 30]
                               [--rounds 3]

Measures, interleaved (each repetition runs every runner once, in a rotated
order, so that machine load hits them alike):
  * `-c pass`: eryx with its default image cached on disk (warm cache),
    eryx booting CPython (ERYX_NO_IMAGE_CACHE=1: the CLI before images),
    and native CPython; wall time (median, min) and peak RSS (GNU time);
  * rendering a jinja2 template in a new process: eryx --image with jinja2
    pre-imported, eryx --image with the packages but nothing imported, and
    native CPython importing Debian's jinja2 (its .pyc cache warm);
  * bench_image (in-process: image build, save and load times, a fresh
    sandbox + import jinja2 + render from a plain and a pre-importing
    runtime), once per round, next to native's in-process import + render.
Prints Markdown for BENCHMARKS.md.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = "/usr/lib/python3/dist-packages"

RENDER = ("import jinja2\n"
          "t = jinja2.Environment(autoescape=True).from_string(\n"
          "    '<ul>{% for u in users %}<li>{{ u.name }} ({{ u.age }})</li>{% endfor %}</ul>')\n"
          "out = t.render(users=[{'name': '<n%d>' % i, 'age': i} for i in range(20)])\n"
          "assert out.startswith('<ul><li>&lt;n0&gt; (0)</li>'), out[:40]\n")
TIMED = ("import time\n_t0 = time.perf_counter()\n" + RENDER +
         "print(round((time.perf_counter() - _t0) * 1000, 3))\n")


def native_python(build):
    cache = open(os.path.join(build, "CMakeCache.txt")).read()
    g = re.search(r"^ERYX_GUEST_DIR:PATH=(.*)$", cache, re.M).group(1)
    return open(os.path.join(g, "python-native.path")).read().strip()


def wall(cmd, env):
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr.decode()))
    return ms, p.stdout.decode()


def rss_kb(cmd, env):
    p = subprocess.run(["/usr/bin/time", "-f", "RSS=%M"] + cmd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(re.search(r"RSS=(\d+)", p.stderr).group(1))


def interleaved(runners, reps):
    """runners: name -> (cmd, env). Returns name -> list of ms."""
    names = list(runners)
    out = {n: [] for n in names}
    for n in names:                       # one warm-up each
        wall(*runners[n])
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            out[n].append(wall(*runners[n])[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--native")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    eryx = os.path.join(a.build, "bin", "eryx")
    bench_image = os.path.join(a.build, "bench", "bench_image")
    native = a.native or native_python(a.build)
    work = tempfile.mkdtemp(prefix="eryx-bench-images-")
    try:
        site = os.path.join(work, "site")
        os.mkdir(site)
        for p in ("jinja2", "markupsafe"):
            shutil.copytree(os.path.join(DIST, p), os.path.join(site, p))
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
        # Native CPython as users run it: it writes and reuses its .pyc
        # files (this machine's environment sets PYTHONDONTWRITEBYTECODE).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        boot = dict(env, ERYX_NO_IMAGE_CACHE="1")
        nenv = dict(env, PYTHONPATH=site)
        jimg, pimg = os.path.join(work, "jinja2.img"), os.path.join(work, "plain.img")
        subprocess.run([eryx, "image", "build", "-o", jimg, "--site-packages", site,
                        "--import", "jinja2"], check=True)
        subprocess.run([eryx, "image", "build", "-o", pimg, "--site-packages", site],
                       check=True)
        subprocess.run([eryx, "-c", "pass"], env=env, check=True)   # makes the cache
        subprocess.run([native, "-c", "import jinja2"], env=nenv, check=True)  # .pyc
        start = {
            "eryx (cached image)": ([eryx, "-c", "pass"], env),
            "eryx (boots CPython)": ([eryx, "-c", "pass"], boot),
            "native": ([native, "-c", "pass"], env),
        }
        jinja = {
            "eryx --image, jinja2 pre-imported": ([eryx, "--image", jimg, "-c", RENDER], env),
            "eryx --image, packages only": ([eryx, "--image", pimg, "-c", RENDER], env),
            "native": ([native, "-c", RENDER], nenv),
        }
        res = {"start": {n: [] for n in start}, "jinja": {n: [] for n in jinja},
               "inproc": [], "native_inproc": []}
        load0 = os.getloadavg()
        for r in range(a.rounds):
            for n, v in interleaved(start, a.reps).items():
                res["start"][n] += v
            for n, v in interleaved(jinja, max(5, a.reps // 3)).items():
                res["jinja"][n] += v
            out = subprocess.run([bench_image, site, "9"], check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            res["inproc"].append(json.loads(out))
            res["native_inproc"] += [float(wall([native, "-c", TIMED], nenv)[1])
                                     for _ in range(9)]
        res["rss_kb"] = {n: statistics.median(rss_kb(*start[n]) for _ in range(3))
                         for n in start}
        res["load"] = (load0, os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(res, eryx, native, a)


def med(v):
    return statistics.median(v)


def report(res, eryx, native, a):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    print("- date: %s; commit %s; load average before/after %s / %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit,
        " ".join("%.2f" % x for x in res["load"][0]),
        " ".join("%.2f" % x for x in res["load"][1])))
    print("- command: `python3 bench/images.py --reps %d --rounds %d`; eryx: `%s`; "
          "native: `%s`" % (a.reps, a.rounds, eryx, native))
    print()
    print("`-c pass`, whole process (%d runs each, interleaved):" % len(
        next(iter(res["start"].values()))))
    print()
    print("| runner | median ms | min ms | vs native (median) | peak RSS MB |")
    print("|---|---|---|---|---|")
    nat = med(res["start"]["native"])
    for n, v in res["start"].items():
        print("| %s | %.1f | %.1f | %.2f× | %.1f |" % (n, med(v), min(v), med(v) / nat,
                                                      res["rss_kb"][n] / 1024))
    print()
    print("Render a jinja2 template in a new process (%d runs each, interleaved):" % len(
        next(iter(res["jinja"].values()))))
    print()
    print("| runner | median ms | min ms |")
    print("|---|---|---|")
    for n, v in res["jinja"].items():
        print("| %s | %.1f | %.1f |" % (n, med(v), min(v)))
    print()
    ip = res["inproc"]
    def m(k):
        return med([x[k] for x in ip])
    print("In process (bench_image, median of %d rounds of 9; native: import + render timed "
          "inside a fresh interpreter, %d runs):" % (len(ip), len(res["native_inproc"])))
    print()
    print("| what | ms |")
    print("|---|---|")
    rows = [
        ("fresh sandbox + import jinja2 + render, runtime with the packages only",
         m("fresh_plain_ms")),
        ("fresh sandbox + import jinja2 + render, jinja2 pre-imported in the image",
         m("fresh_preimported_ms")),
        ("native CPython: import jinja2 + render in a fresh interpreter (.pyc cached)",
         med(res["native_inproc"])),
        ("new sandbox, default runtime (p50 of 20 alive at once)",
         m("cold_new_default_us") / 1000),
        ("its first `pass`", m("cold_first_run_default_us") / 1000),
        ("new sandbox, runtime with jinja2 pre-imported", m("cold_new_jinja_us") / 1000),
        ("its first `pass`", m("cold_first_run_jinja_us") / 1000),
        ("build the default runtime (boot, warm-up, capture)", m("build_default_ms")),
        ("load the default image from its file", m("load_default_ms")),
        ("first sandbox + `pass` after that load", m("first_run_default_ms")),
        ("build a runtime with jinja2 pre-imported", m("build_jinja_ms")),
        ("save it to a file", m("save_jinja_ms")),
        ("load it from the file", m("load_jinja_ms")),
        ("first sandbox + `pass` after that load", m("first_run_jinja_ms")),
    ]
    for k, v in rows:
        print("| %s | %.3f |" % (k, v))
    print()
    print("Image sizes (non-zero memory + packages): default %.1f MB, with jinja2 %.1f MB." % (
        m("image_default_bytes") / 1e6, m("image_jinja_bytes") / 1e6))


if __name__ == "__main__":
    main()
