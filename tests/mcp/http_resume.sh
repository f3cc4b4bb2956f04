#!/usr/bin/env bash
# Resumable event streams of `eryx mcp --http` (revision 2025-11-25): a
# tools/call's stream opens with a priming event (an id, "retry: 1000", no
# data), its events carry ids, and a client whose connection broke gets
# what it missed with a GET of Last-Event-ID, then the rest as it comes;
# only its own MCP session's streams, each once delivered whole, the
# latest GET taking a stream over from an older one; a
# 2025-06-18 client's stream has no ids. Then `eryx mcp-proxy` against it
# through a relay that cuts the connection after the priming event: the
# proxy resumes the stream and the call gets its answer; and so does the
# TypeScript SDK's client (tests/mcp/sdk_resume.mjs).
# usage: http_resume.sh ERYX_BINARY
set -u
ERYX=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
MCP_NPM_DIR=$("$here/../../scripts/install-npm.sh" | tail -n 1) || exit 1
export MCP_NPM_DIR
tmp=$(mktemp -d)
"$ERYX" mcp --http 127.0.0.1:0 2>"$tmp/err" </dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^eryx mcp: serving http:.*:\([0-9]*\)\/mcp$/\1/p' "$tmp/err")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "eryx mcp --http did not start: $(cat "$tmp/err")"; exit 1; }
python3 - "$port" "$ERYX" "$here/sdk_resume.mjs" <<'PY'
import http.client, json, socket, subprocess, sys, threading, time
port, eryx, sdk_resume = int(sys.argv[1]), sys.argv[2], sys.argv[3]
H = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
fails = 0

def check(name, ok, detail=""):
    global fails
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    fails += not ok

def init(version="2025-11-25"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": version, "capabilities": {},
                         "clientInfo": {"name": "t", "version": "1"}}}), H)
    r = c.getresponse()
    r.read()
    c.close()
    return r.getheader("Mcp-Session-Id")

def call(sid, code, rid, version="2025-11-25"):
    """A tools/call on a raw socket, left open: the socket."""
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": code}}}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\n"
              b"MCP-Protocol-Version: %s\r\nContent-Length: %d\r\n\r\n%s"
              % (sid.encode(), version.encode(), len(body), body))
    return s

def read_until(s, token):
    got, end = b"", time.monotonic() + 20
    while token not in got and time.monotonic() < end:
        d = s.recv(65536)
        if not d:
            break
        got += d
    return got

def primed(sid, code, rid):
    """Calls, reads the priming event, cuts the connection: its id."""
    s = call(sid, code, rid)
    got = read_until(s, b"data:\n\n")
    s.close()
    ok = b"retry: 1000\n" in got and b"id: " in got
    return got.split(b"id: ")[1].split(b"\n")[0].decode() if ok else "none"

def get(sid, last):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Accept": "text/event-stream"}
    if sid:
        h["Mcp-Session-Id"] = sid
    if last:
        h["Last-Event-ID"] = last
    c.request("GET", "/mcp", headers=h)
    r = c.getresponse()
    return r.status, r.read()

sid = init()
last = primed(sid, "import time; time.sleep(1); print('one')", 2)
check("priming", last.endswith("-0"), last)
time.sleep(2)  # the run ends meanwhile: its answer is kept
st, body = get(sid, last)
check("resumed_after_the_end", st == 200 and b'"id":2' in body and b"one" in body and
      f"id: {last[:-2]}-1\n".encode() in body, (st, body[:300]))
check("delivered_once", get(sid, last)[0] == 404)

last = primed(sid, "import time; time.sleep(2); print('two')", 3)
time.sleep(0.3)
t = time.monotonic()
st, body = get(sid, last)  # the rest comes on the GET as the run ends
check("resumed_while_running", st == 200 and b'"id":3' in body and b"two" in body and
      time.monotonic() - t > 1, (st, body[:300]))

last = primed(sid, "import time; time.sleep(1); print('three')", 4)
time.sleep(1.5)
other = init()
check("other_session_refused", get(other, last)[0] == 404)
check("unknown_stream", get(sid, "123456789-0")[0] == 404 and get(sid, "x")[0] == 404)
check("no_session", get(None, last)[0] == 400)
check("no_last_event_id", get(sid, None)[0] == 405)
check("own_session_served", get(sid, last)[0] == 200)

# A second GET takes the stream over from a first one still waiting (the
# client's latest connection is the one it reads): the answer goes there.
last = primed(sid, "import time; time.sleep(2); print('five')", 6)
first = []

def first_get():
    try:
        first.append(get(sid, last))
    except (http.client.HTTPException, OSError) as e:  # cut without its end
        first.append((0, repr(e).encode()))
t = threading.Thread(target=first_get)
t.start()
time.sleep(0.5)
st, body = get(sid, last)
t.join()
check("newer_get_takes_over", st == 200 and b"five" in body and b"five" not in first[0][1],
      (st, body[:200], first))

old = init("2025-06-18")
s = call(old, "print('four')", 5, "2025-06-18")
got = read_until(s, b"four")
s.close()
check("older_client_no_ids", b"four" in got and b"id: " not in got and b"retry" not in got,
      got[:300])

# eryx mcp-proxy through a relay that cuts the connection of the call
# whose code says "cut me" right after the priming event went through.
gets = []

def pump(a, b, watch, look_first=None):
    """Forwards a to b; look_first(d) sees what goes before it goes, and
    watch(d) after it went, ending the connection when it says so."""
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if look_first is not None:
                look_first(d)
            b.sendall(d)
            if watch is not None and watch(d):
                break
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def relay_one(client):
    """A connection (kept alive: requests follow one another): GETs are
    noted; once a request says "cut me", the connection is cut after the
    next priming event."""
    server = socket.create_connection(("127.0.0.1", port))
    armed = []

    def upstream(d):  # before the server can answer it
        if d.startswith(b"GET"):
            gets.append(d)
        if b"cut me" in d:
            armed.append(1)
    threading.Thread(target=pump, args=(client, server, None, upstream), daemon=True).start()
    pump(server, client, lambda d: bool(armed) and b"data:\n\n" in d)

lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(16)
threading.Thread(target=lambda: [threading.Thread(target=relay_one, args=(lsock.accept()[0],),
                                                  daemon=True).start() for _ in iter(int, 1)],
                 daemon=True).start()
msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_python",
            "arguments": {"code": "import time; time.sleep(2.5); print('cut me, ' + 'resumed')"}}}]
p = subprocess.Popen([eryx, "mcp-proxy", f"http://127.0.0.1:{lsock.getsockname()[1]}/mcp"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
for m in msgs:
    p.stdin.write((json.dumps(m) + "\n").encode())
    p.stdin.flush()
    time.sleep(0.3)
# The code's sleep keeps its answer well after the cut: when a loaded
# machine delayed the relay past it (1 s), the server had written the
# whole answer, rightly let the stream go, and the resume got 404.
time.sleep(5)
out, err = p.communicate(timeout=30)  # closes stdin: the proxy ends
check("proxy_resumes_a_cut_stream",
      b'"id":2' in out and b"cut me, resumed" in out and len(gets) == 1 and
      b"Last-Event-ID: " in gets[0], (out, err, gets))
gets.clear()
r = subprocess.run(["node", sdk_resume, f"http://127.0.0.1:{lsock.getsockname()[1]}/mcp"],
                   capture_output=True, timeout=60)
check("sdk_client_resumes_a_cut_stream",
      r.returncode == 0 and b"cut me, sdk" in r.stdout and
      any(g.lower().find(b"last-event-id: ") > 0 for g in gets), (r, gets))
sys.exit(1 if fails else 0)
PY
status=$?
[ $status = 0 ] && echo "http_resume: all passed"
[ $status = 0 ] || { echo "eryx mcp --http's stderr:"; cat "$tmp/err"; }
exit $status
