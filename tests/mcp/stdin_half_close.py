"""`eryx mcp` whose stdin is a socket the client shuts down for writing but
keeps open, while stdout, a socket too, is not read: the server must see
stdin end and exit 5 s later with 74 (docs/mcp.md). Prints the outcome as
one JSON line: {"rc": N | null, "after": seconds, "err": stderr}."""
import json
import socket
import subprocess
import sys
import time

eryx = sys.argv[1]
stdin_r, stdin_w = socket.socketpair()
out_r, out_w = socket.socketpair()
p = subprocess.Popen([eryx, 'mcp'], stdin=stdin_r, stdout=out_w, stderr=subprocess.PIPE)
stdin_r.close()
out_w.close()


def send(m):
    stdin_w.sendall((json.dumps(dict(jsonrpc='2.0', **m)) + '\n').encode())


send(dict(id=0, method='initialize', params=dict(
    protocolVersion='2025-11-25', capabilities={}, clientInfo=dict(name='t', version='1'))))
send(dict(id=1, method='tools/call', params=dict(
    name='run_python', arguments=dict(code='print("x" * 2_000_000)'))))
time.sleep(1.5)
for i in range(2, 5):
    send(dict(id=i, method='ping'))
time.sleep(0.5)
t0 = time.time()
stdin_w.shutdown(socket.SHUT_WR)  # stdin ends; the descriptor stays open
try:
    rc = p.wait(timeout=20)
except subprocess.TimeoutExpired:
    rc = None
    p.kill()
    p.wait()
print(json.dumps(dict(rc=rc, after=time.time() - t0, err=p.stderr.read().decode())))
