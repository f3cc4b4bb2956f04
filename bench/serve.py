#!/usr/bin/env python3
"""`eryx serve` throughput and latency (BENCHMARKS.md, "Service").

Starts a redis-server, N replicas sharing it and HAProxy in front
(tests/serve/cluster.py), then:

1. executions/s and latency p50/p90/p99 of `pass` and of a small JSON job
   (json.dumps of a 100-element dict) in fresh sandboxes (the servers'
   pools), from C concurrent clients (threads of this process, one
   connection each: HAProxy spreads the connections over the replicas),
   for each replica count;
2. a session's next step on the replica that ran the previous one (its
   sandbox is still there: no load) against on another replica (it loads
   the session's state from Redis first), by the session's size.

usage: PYTHONPATH=build/python python3 bench/serve.py [--replicas 1,2,4]
       [--clients 8] [--seconds 5] [--steps 200]
"""

import argparse
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "serve"))
import cluster  # noqa: E402

from eryx import remote  # noqa: E402

JOBS = {
    "pass": "pass",
    "json": "import json\nresult = len(json.dumps({f'k{i}': [i, str(i)] for i in range(100)}))",
}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def load(url, token, code, clients, seconds):
    """Executions/s and latencies (ms) of code from clients threads."""
    lat = [[] for _ in range(clients)]
    errors = []
    start_line = threading.Barrier(clients + 1)
    stop = [0.0]

    def client(i):
        with remote.Sandbox(url, token) as sb:
            sb.execute("pass")   # connect (and warm) outside the measured time
            start_line.wait()
            mine = lat[i]
            try:
                while time.perf_counter() < stop[0]:
                    t = time.perf_counter()
                    sb.execute(code)
                    mine.append((time.perf_counter() - t) * 1000)
            except Exception as exc:  # noqa: BLE001 (reported)
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop[0] = time.perf_counter() + 1e9
    start_line.wait()
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]!r}")
    all_lat = [x for xs in lat for x in xs]
    return len(all_lat) / wall, all_lat


def same_latency(url, token, steps, state_code):
    """ms per `n += 1` step on one connection (one replica)."""
    with remote.Session(url, token, session="bench-same") as s:
        s.execute(state_code + "\nn = 0")
        same = []
        for _ in range(steps):
            t = time.perf_counter()
            s.execute("n += 1")
            same.append((time.perf_counter() - t) * 1000)
        s.delete()
    return same


def continue_latency(c, steps, state_code):
    """ms per `n += 1` step: same replica (one connection) and alternating
    between two replicas (connections pinned to each, not through HAProxy)."""
    a, b = c.replicas[0].url, c.replicas[1].url
    out = {"same": same_latency(a, c.token, steps, state_code)}
    with remote.Session(a, c.token, session="bench-other") as s1, \
            remote.Session(b, c.token, session="bench-other") as s2:
        s1.execute(state_code + "\nn = 0")
        other = []
        for i in range(steps):
            s = s2 if i % 2 == 0 else s1
            t = time.perf_counter()
            s.execute("n += 1")
            other.append((time.perf_counter() - t) * 1000)
        assert s1.execute("print(n)").stdout == f"{steps}\n"
        s1.delete()
    out["other"] = other
    return out


def fmt(xs):
    return f"{pct(xs, 50):7.2f} {pct(xs, 90):7.2f} {pct(xs, 99):7.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", default="1,2,4")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    counts = [int(x) for x in args.replicas.split(",")]
    print(f"clients {args.clients} (threads, one connection each), {args.seconds} s per row")
    print(f"{'replicas':>8} {'job':>5} {'exec/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}")
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="eryx-bench-serve.") as d:
            with cluster.Cluster(d, replicas=n, extra=["--quiet"]) as c:
                for job, code in JOBS.items():
                    rate, lat = load(c.url, c.token, code, args.clients, args.seconds)
                    print(f"{n:>8} {job:>5} {rate:8.0f} {fmt(lat)}", flush=True)
    states = (("small state", "pass"),
              ("+1 MiB of globals", "blob = bytes(range(256)) * 4096"),
              ("+16 MiB of globals", "blob = bytes(range(256)) * 65536"))
    print(f"\nsession step `n += 1`, {args.steps} steps: p50 p90 p99 ms")
    with tempfile.TemporaryDirectory(prefix="eryx-bench-serve.") as d:
        with cluster.Cluster(d, replicas=2, haproxy=False, extra=["--quiet"]) as c:
            for label, state in states:
                r = continue_latency(c, args.steps, state)
                print(f"{label:>20}  same replica {fmt(r['same'])}   another replica "
                      f"{fmt(r['other'])}", flush=True)
            # The same steps on a replica without --redis (its store in
            # memory): what the store's round trips add.
            token_file = os.path.join(d, "token")
            solo = cluster.Replica("solo", d, token_file=token_file, key_file=None,
                                   extra=["--quiet"])
            try:
                for label, state in states:
                    lat = same_latency(solo.url, c.token, args.steps, state)
                    print(f"{label:>20}  no Redis     {fmt(lat)}", flush=True)
            finally:
                solo.stop()


if __name__ == "__main__":
    main()
