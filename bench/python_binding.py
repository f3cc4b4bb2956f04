#!/usr/bin/env python3
"""The Python binding's costs against the same operations through the C API.

    python3 bench/python_binding.py [--build build] [--n 2000] [--rounds 5]

Runs build/bench/bench_binding (C) and the same loops through the eryx
package staged in build/python, interleaved round by round, and prints
a Markdown table: per-operation microseconds (best of the rounds) and the
difference, which is the binding's own overhead. Then the throughput of
N Python threads each running its own sandbox on a CPU-bound snippet,
against the same snippet on N threads of the host's own CPython (the GIL
serialises those), for N = 1..nproc, with the cores kept busy (process CPU
time over wall time: N when N threads really run at once).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CLOCK = time.perf_counter


def c_round(build, n):
    extra = ["cpu"] if CLOCK is time.process_time else []
    out = subprocess.run([os.path.join(build, "bench", "bench_binding"), str(n), "1"] + extra,
                         check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def py_round(eryx, n):
    res = {}
    t = CLOCK()
    for _ in range(n):
        sb = eryx.Sandbox()
        sb.execute("pass")
        sb.close()
    res["sandbox_new_run_free"] = (CLOCK() - t) / n * 1e6

    s = eryx.Session()
    s.execute("pass")
    t = CLOCK()
    for _ in range(n):
        s.execute("pass")
    res["session_run_pass"] = (CLOCK() - t) / n * 1e6
    s.close()

    sb = eryx.Sandbox()
    sb.execute("pass")
    t = CLOCK()
    for _ in range(n):
        sb.execute("pass")
    res["reset_run_pass"] = (CLOCK() - t) / n * 1e6
    sb.close()

    s = eryx.Session(callbacks=[{"name": "f", "fn": lambda: None}])
    code = f"for _ in range({n}):\n    await f()\n"
    s.execute(code)
    t = CLOCK()
    s.execute(code)
    total = CLOCK() - t
    t = CLOCK()
    s.execute("pass")
    res["callback_round_trip"] = (total - (CLOCK() - t)) / n * 1e6
    s.close()

    s = eryx.Session(callbacks=[{"name": "f", "fn": lambda: None, "inline": True}])
    s.execute(code)
    t = CLOCK()
    s.execute(code)
    total = CLOCK() - t
    t = CLOCK()
    s.execute("pass")
    res["callback_round_trip_inline"] = (total - (CLOCK() - t)) / n * 1e6
    s.close()

    pool = eryx.SandboxPool(max_size=16)
    for _ in range(3):
        with pool.acquire() as p:
            p.execute("pass")
    t = CLOCK()
    for _ in range(n):
        with pool.acquire() as p:
            p.execute("pass")
    res["pool_acquire_run_release"] = (CLOCK() - t) / n * 1e6
    pool.close()

    async def arun():
        s = eryx.Session()
        await s.execute_async("pass")
        t = CLOCK()
        for _ in range(n // 4):
            await s.execute_async("pass")
        return (CLOCK() - t) / (n // 4) * 1e6
    res["session_execute_async_pass"] = asyncio.run(arun())
    return res


LOOP = "x = 0\nfor i in range(100000):\n    x += i\n"


def threads_throughput(eryx, nthreads, seconds):
    stop = time.perf_counter() + seconds
    counts = [0] * nthreads

    def work(k):
        sb = eryx.Session()
        while time.perf_counter() < stop:
            sb.execute(LOOP)
            counts[k] += 1
        sb.close()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return sum(counts) / wall, (time.process_time() - c0) / wall


def native_throughput(nthreads, seconds):
    stop = time.perf_counter() + seconds
    counts = [0] * nthreads
    code = compile(LOOP, "<loop>", "exec")

    def work(k):
        while time.perf_counter() < stop:
            exec(code, {})
            counts[k] += 1
    ts = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return sum(counts) / wall, (time.process_time() - c0) / wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--cpu", action="store_true",
                    help="time the operations in process CPU time (all threads) instead of "
                         "wall time: steadier on a loaded machine")
    args = ap.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
    sys.path.insert(0, os.path.join(args.build, "python"))
    import eryx

    c_best, py_best = {}, {}
    for _ in range(args.rounds):
        for k, v in c_round(args.build, args.n).items():
            c_best[k] = min(v, c_best.get(k, v))
        for k, v in py_round(eryx, args.n).items():
            py_best[k] = min(v, py_best.get(k, v))
    print(f"python {sys.version.split()[0]}, eryx {eryx.__version__}, n={args.n}, "
          f"rounds={args.rounds}, clock {'process CPU' if args.cpu else 'wall'}, "
          f"load {os.getloadavg()[0]:.2f}\n")
    print("| operation | C API µs | binding µs | binding overhead µs |")
    print("|---|---|---|---|")
    for k, v in py_best.items():
        c = c_best.get(k)
        if c is None:
            print(f"| {k} | — | {v:.1f} | — |")
        else:
            print(f"| {k} | {c:.1f} | {v:.1f} | {v - c:+.1f} |")
    print()
    print("| threads | eryx sandboxes: runs/s | cores busy (CPU s / wall s) | "
          "host CPython threads: runs/s | cores busy |")
    print("|---|---|---|---|---|")
    for n in range(1, (os.cpu_count() or 1) + 1):
        e, ec = threads_throughput(eryx, n, args.seconds)
        p, pc = native_throughput(n, args.seconds)
        print(f"| {n} | {e:.1f} | {ec:.2f} | {p:.1f} | {pc:.2f} |")


if __name__ == "__main__":
    main()
