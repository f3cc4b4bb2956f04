#!/usr/bin/env python3
"""`eryx --remote` as a command against one local `eryx serve`, two builds
side by side (BENCHMARKS.md, "eryx --remote: stdin and callbacks").

Interleaved, rounds times, wall clock of the whole command (median, min):
  pass       eryx --remote URL -c pass
  callbacks  50 `await noop()`, each answered by a --callback command
             (a shell script printing null)
  stdin      10 MiB of base64 text on stdin, read whole by the code

usage: python3 bench/remote_cli.py [--rounds 5] NAME=ERYX [NAME=ERYX ...]
The first eryx also runs the server.
"""

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "pass": (["-c", "pass"], None),
    "callbacks": (["--callback", "noop={cb}", "-c", "for i in range(50): await noop()"], None),
    "stdin": (["-c", "import sys\nassert len(sys.stdin.buffer.read()) == 10 << 20"], "blob"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("runners", nargs="+")
    a = ap.parse_args()
    runners = [r.split("=", 1) for r in a.runners]
    work = tempfile.mkdtemp(prefix="eryx-remote-bench-")
    cb = os.path.join(work, "null.sh")
    with open(cb, "w") as f:
        f.write("#!/bin/sh\necho null\n")
    os.chmod(cb, 0o755)
    blob = os.path.join(work, "blob")
    with open(blob, "wb") as f:
        # Text: builds from before 2026-12-04 sent stdin whole as UTF-8.
        f.write(base64.b64encode(os.urandom(10 << 20))[:10 << 20])
    port = free_port()
    srv = subprocess.Popen([runners[0][1], "serve", "--listen", f"127.0.0.1:{port}", "--no-auth",
                            "--quiet"], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    url = f"ws://127.0.0.1:{port}"
    times = {(n, c): [] for n, _ in runners for c in CASES}
    try:
        for _ in range(a.rounds):
            for case, (args, stdin) in CASES.items():
                for name, exe in runners:
                    argv = [exe, "--remote", url] + [x.format(cb=cb) for x in args]
                    with open(blob if stdin else os.devnull, "rb") as f:
                        t = time.perf_counter()
                        p = subprocess.run(argv, stdin=f if stdin else subprocess.DEVNULL,
                                           capture_output=True)
                        dt = (time.perf_counter() - t) * 1000
                    if p.returncode != 0:
                        sys.exit(f"{name} {case}: exit {p.returncode}: {p.stderr.decode()}")
                    times[(name, case)].append(dt)
    finally:
        srv.terminate()
        srv.wait()
    print(f"load average: {os.getloadavg()[0]:.2f}; rounds: {a.rounds}")
    print("| case | " + " | ".join(f"{n} median / min ms" for n, _ in runners) + " |")
    print("|---|" + "---|" * len(runners))
    for case in CASES:
        cells = [f"{statistics.median(times[(n, case)]):.0f} / {min(times[(n, case)]):.0f}"
                 for n, _ in runners]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
