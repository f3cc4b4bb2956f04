"""Many small HTTP GETs to a loopback server: eryx against native CPython.

    python3 bench/net.py [--requests 2000] [--rounds 3] [--eryx build/bin/eryx]

A keep-alive HTTP/1.1 server (asyncio, in a process of its own) answers
every GET with a 13-byte body. The same client code runs, round
after round, interleaved, under:
  native    the guest build's "build python" (CPython 3.13.5, same source)
  debian    the machine's python3 (Debian's CPython 3.11, PGO + LTO)
  eryx      build/bin/eryx --allow-net 127.0.0.1:PORT
in three styles: urllib (a new connection per request, as urllib does),
http.client on one keep-alive connection, and asyncio streams (10
connections, keep-alive, in one gather). Each prints requests per second
and the median and 99th-percentile latency, timed inside Python.
Prints a Markdown table (best round for req/s; the latencies of that round).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SERVER = r"""
import asyncio, sys
BODY = b"hello, world\n"
RESP = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n" % len(BODY)) + BODY
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            w.write(RESP)
            if b"connection: close" in head.lower():
                await w.drain(); break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    w.close()
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"""

CLIENT = r"""
import sys, time, json
style, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
url = "http://127.0.0.1:%d/x" % port
lat = []
if style == "urllib":
    import urllib.request
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        urllib.request.urlopen(url).read()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
elif style == "keepalive":
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/x"); c.getresponse().read()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
else:
    import asyncio
    async def worker(k):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(k):
            t = time.perf_counter()
            w.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            await r.readuntil(b"\r\n\r\n")
            await r.readexactly(13)
            lat.append(time.perf_counter() - t)
        w.close()
    async def main():
        await asyncio.gather(*[worker(n // 10) for _ in range(10)])
    t0 = time.perf_counter()
    asyncio.run(main())
    total = time.perf_counter() - t0
lat.sort()
print(json.dumps({"rps": len(lat) / total, "p50_us": lat[len(lat) // 2] * 1e6,
                  "p99_us": lat[int(len(lat) * 0.99)] * 1e6}))
"""


def native_python():
    cache = os.path.join(ROOT, "build", "CMakeCache.txt")
    for line in open(cache):
        if line.startswith("ERYX_GUEST_DIR:PATH="):
            guest = line.split("=", 1)[1].strip()
            return open(os.path.join(guest, "python-native.path")).read().strip()
    raise SystemExit("build/ is not configured")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eryx", default=os.path.join(ROOT, "build", "bin", "eryx"))
    a = ap.parse_args()
    srv = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    port = int(srv.stdout.readline())
    runners = {
        "native": [native_python(), "-c", CLIENT],
        "debian": ["/usr/bin/python3", "-c", CLIENT],
        "eryx": [a.eryx, "--allow-net", f"127.0.0.1:{port}", "--timeout", "0", "-c", CLIENT],
    }
    styles = ["urllib", "keepalive", "asyncio"]
    best = {}
    try:
        for _ in range(a.rounds):
            for style in styles:
                for name, cmd in runners.items():
                    out = subprocess.run(cmd + [style, str(port), str(a.requests)],
                                         capture_output=True, text=True, timeout=600)
                    if out.returncode:
                        raise SystemExit(f"{name} {style} failed:\n{out.stderr}")
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    key = (style, name)
                    if key not in best or r["rps"] > best[key]["rps"]:
                        best[key] = r
    finally:
        srv.kill()
    print(f"| style | runner | requests/s | p50 latency (µs) | p99 latency (µs) | "
          f"time ÷ native |")
    print("|---|---|---|---|---|---|")
    for style in styles:
        for name in runners:
            r = best[(style, name)]
            ratio = best[(style, "native")]["rps"] / r["rps"]
            print(f"| {style} | {name} | {r['rps']:.0f} | {r['p50_us']:.0f} | "
                  f"{r['p99_us']:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
