"""Tool calls through `eryx mcp-proxy`: a new connection per call
(`--max-idle 0`, as the proxy did before it kept connections alive)
against connections kept alive (the default), side by side: N calls one
after another, each waiting for its answer, to the fake Streamable HTTP
server of the tests (tests/mcp/http_server.py), over HTTPS (a CA made
here) and plain HTTP, on loopback. Rounds alternate the two; prints
per-call medians (µs) and their ratio as a Markdown table. On loopback
the saving is the handshakes' CPU; to a server far away it is also one
or two round trips per call.

The same against `eryx mcp --http` (HTTPS with a bearer token, and plain
HTTP), whose `run_python("pass")` answers come as event streams.

usage: python3 bench/mcp/proxy_bench.py ERYX [N=200] [ROUNDS=5]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
server_py = os.path.join(root, "tests", "mcp", "http_server.py")


def make_ca(d):
    def run(*a):
        subprocess.run(a, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out",
        "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")


def start_server(d, tls):
    args = [sys.executable, server_py, os.path.join(d, "log")]
    if tls:
        args += [os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


def start_eryx_mcp(eryx, d, tls):
    """`eryx mcp --http` on loopback, with a token and HTTPS when tls."""
    args = [eryx, "mcp", "--http", "127.0.0.1:0"]
    if tls:
        with open(os.path.join(d, "token"), "w") as f:
            f.write("bench-token-0123456789\n")
        args += ["--http-token-file", os.path.join(d, "token"), "--http-tls-cert",
                 os.path.join(d, "srv.pem"), "--http-tls-key", os.path.join(d, "srv.key")]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()  # "eryx mcp: serving http(s)://127.0.0.1:PORT/mcp..."
    return p, int(line.split("/mcp")[0].rsplit(":", 1)[1])


def calls(eryx, url, extra, n, tool=("seen", {})):
    """Per-call round trips (s) of n sequential tools/call through the proxy."""
    p = subprocess.Popen([eryx, "mcp-proxy", url] + extra, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(msg):
        p.stdin.write(json.dumps(msg) + "\n")
        p.stdin.flush()
        if "id" in msg:
            answer = json.loads(p.stdout.readline())
            assert "result" in answer, answer
    ask({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}})
    ask({"jsonrpc": "2.0", "method": "notifications/initialized"})
    times = []
    for i in range(1, n + 1):
        t = time.perf_counter()
        ask({"jsonrpc": "2.0", "id": i, "method": "tools/call",
             "params": {"name": tool[0], "arguments": tool[1]}})
        times.append(time.perf_counter() - t)
    p.stdin.close()
    p.wait(timeout=30)
    return times


def main():
    eryx = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    fresh, kept = ("--max-idle", "0"), ()
    with tempfile.TemporaryDirectory() as d:
        make_ca(d)
        rows = []
        for name, start, tool in (
                ("fake server, `seen`", lambda tls: start_server(d, tls), ("seen", {})),
                ("`eryx mcp --http`, `run_python(\"pass\")`",
                 lambda tls: start_eryx_mcp(eryx, d, tls), ("run_python", {"code": "pass"}))):
            for tls in (True, False):
                server, port = start(tls)
                try:
                    scheme = "https" if tls else "http"
                    url = f"{scheme}://127.0.0.1:{port}/mcp"
                    extra = ["--ca-file", os.path.join(d, "ca.pem"), "--header",
                             "Authorization: Bearer bench-token-0123456789"] if tls else []
                    per = {fresh: [], kept: []}
                    for _ in range(rounds):
                        for v in (fresh, kept):
                            per[v].append(statistics.median(
                                calls(eryx, url, extra + list(v), n, tool)) * 1e6)
                    ma, mb = statistics.median(per[fresh]), statistics.median(per[kept])
                    rows.append((name, scheme, ma, mb, min(per[fresh]), max(per[fresh]),
                                 min(per[kept]), max(per[kept])))
                finally:
                    server.kill()
                    server.wait()
    print(f"| server, tool | transport | a connection per call: µs per call (median of "
          f"{rounds} rounds' medians, range) | kept alive | kept / per call |")
    print("|---|---|---|---|---|")
    for name, scheme, ma, mb, alo, ahi, blo, bhi in rows:
        print(f"| {name} | {scheme} | {ma:.0f} ({alo:.0f}–{ahi:.0f}) | {mb:.0f} "
              f"({blo:.0f}–{bhi:.0f}) | {mb / ma:.2f} |")
    print(f"\n{eryx}; {n} sequential calls per round.")


if __name__ == "__main__":
    main()
