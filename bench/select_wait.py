"""How late select.select over a sandbox socket returns after data arrives.

    python3 bench/select_wait.py [--eryx build/bin/eryx] [--waits 200] [--delay-ms 30]

A loopback server (a thread here) answers each byte it gets with one byte,
--delay-ms later. In one eryx process, interleaved wait by wait, the guest
times `select.select([s], [], [], 10)` from its send to the select's return
in two ways:
  host     the sandbox's select: one poll operation the host parks until
           the socket is readable (docs/networking.md);
  polling  the guest asking without waiting and sleeping between tries
           (0.5 ms doubling to 20 ms), as select did until 2026-12-03 and
           still does over sockets and other descriptors together
           (_eryx.net._wait_loop, called directly);
and native CPython (the machine's python3) times the same select on a
real socket. Prints, per way, the lateness (time minus the delay) at the
median, 90th percentile and worst, and the operations per select.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CLIENT = r"""
import json, select, socket, sys, time
port, waits, native = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "native"
s = socket.create_connection(("127.0.0.1", port))
ways = {"native": []} if native else {"host": [], "polling": []}
ops = {w: 0 for w in ways}
if not native:
    import _eryx.net as net
    real_call = net.call
    current = [None]
    def counting(op, args):
        if op == "poll":
            ops[current[0]] += 1
        return real_call(op, args)
    net.call = counting
    fd = s.fileno()
    def polling(timeout):
        return net._wait_loop(lambda: net._readiness([(fd, 1)]) or None, timeout)
for i in range(waits):
    for way in ways:
        if not native:
            current[0] = way
        s.sendall(b"x")
        t = time.monotonic()
        if way == "polling":
            ready = polling(10)
        else:
            ready = select.select([s], [], [], 10)[0]
        ways[way].append(time.monotonic() - t)
        assert ready and s.recv(1) == b"y"
print(json.dumps({"times": ways, "ops": ops}))
"""


def serve(listener, delay):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=answer, args=(conn, delay), daemon=True).start()


def answer(conn, delay):
    with conn:
        while conn.recv(1):
            time.sleep(delay)
            conn.sendall(b"y")


def row(way, times, ops, waits, delay):
    late = sorted((t - delay) * 1000 for t in times)
    p90 = late[int(len(late) * 0.9)]
    per = f"{ops / waits:.1f}" if ops is not None else "-"
    return (f"| {way} | {statistics.median(late):.3f} | {p90:.3f} | {late[-1]:.3f} | "
            f"{per} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eryx", default=os.path.join(ROOT, "build", "bin", "eryx"))
    ap.add_argument("--native", default=sys.executable)
    ap.add_argument("--waits", type=int, default=200)
    ap.add_argument("--delay-ms", type=float, default=30.0)
    a = ap.parse_args()
    delay = a.delay_ms / 1000
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=serve, args=(listener, delay), daemon=True).start()
    runs = {
        "eryx": [a.eryx, "--allow-net", f"127.0.0.1:{port}", "--timeout", "600000", "-c", CLIENT,
                 str(port), str(a.waits), "eryx"],
        "native": [a.native, "-c", CLIENT, str(port), str(a.waits), "native"],
    }
    print(f"{a.waits} waits, server delay {a.delay_ms:g} ms; lateness in ms after the delay\n")
    print("| select | median | p90 | worst | poll operations per select |")
    print("|---|---|---|---|---|")
    for name, argv in runs.items():
        out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if out.returncode:
            sys.exit(f"{name}: status {out.returncode}\n{out.stderr}")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        for way, times in got["times"].items():
            ops = got["ops"].get(way) if name == "eryx" else None
            print(row(f"{name}, {way}" if name == "eryx" else "native CPython", times, ops,
                      a.waits, delay))
    listener.close()


if __name__ == "__main__":
    main()
