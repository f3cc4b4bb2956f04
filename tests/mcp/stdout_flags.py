"""Whether `eryx mcp` makes its stdout non-blocking (docs/mcp.md): yes on a
pipe of its own, no when stderr is the same pipe (2>&1), where the flag,
which belongs to the open file they share, would make stderr's messages
drop while the pipe is full. Reads the server's flags of fd 1 from
/proc/PID/fdinfo/1 once it has answered initialize. Prints one JSON line:
{"own": bool, "shared": bool}, each whether O_NONBLOCK was set."""
import json
import os
import subprocess
import sys

eryx = sys.argv[1]
INIT = json.dumps(dict(jsonrpc='2.0', id=0, method='initialize', params=dict(
    protocolVersion='2025-11-25', capabilities={}, clientInfo=dict(name='t', version='1'))))


def nonblocking(stderr):
    p = subprocess.Popen([eryx, 'mcp'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=stderr)
    p.stdin.write((INIT + '\n').encode())
    p.stdin.flush()
    p.stdout.readline()  # answered: the stdio loop has set its flags
    with open(f'/proc/{p.pid}/fdinfo/1') as f:
        flags = int(next(l for l in f if l.startswith('flags:')).split()[1], 8)
    p.stdin.close()
    p.wait(timeout=30)
    return bool(flags & os.O_NONBLOCK)


print(json.dumps(dict(own=nonblocking(subprocess.DEVNULL), shared=nonblocking(subprocess.STDOUT))))
