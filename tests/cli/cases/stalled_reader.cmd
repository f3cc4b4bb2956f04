# A reader that takes nothing until eryx has exited (a parent that reads
# a pipe only after the wait): the run still ends at its time limit. It
# was held in the write of its output, host code that neither the
# limit's KeyboardInterrupt nor its hard stop reaches, until the reader
# went away. What could not be written once the limit passed is dropped
# and counted, the status is the limit's, and the session is saved. The
# reader gives up after 20 s, printing "still running".
mkdir stalled_reader && cd stalled_reader  # its own directory: the cases share one
reader() {
    for _ in $(seq 200); do [ -s status ] && break; sleep 0.1; done
    cat status 2>/dev/null || echo "still running after 20 s"
}
($ERYX --session s.session --timeout 500 -c 'x = 42
while True: print("y" * 1000)' 2>err; echo "status $?" >status) | reader
sed 's/^eryx: [0-9]* bytes/eryx: N bytes/' err
$ERYX --session s.session -c 'print(x)'
# stderr into the same stalled pipe: its messages are dropped too.
rm status
($ERYX --timeout 500 -c 'import sys
while True: sys.stderr.write("y" * 1000)' 2>&1; echo "status $?" >status) | reader
# stdout a socket that is never read (written with MSG_DONTWAIT, where a
# pipe is written through a non-blocking description of its own).
python3 - <<'PY'
import os, socket, subprocess
a, b = socket.socketpair()
p = subprocess.Popen([os.environ["ERYX"], "--timeout", "500", "-c",
                      'while True: print("y" * 1000)'], stdout=b, stderr=subprocess.DEVNULL)
b.close()
try:
    print("status", p.wait(timeout=20))
except subprocess.TimeoutExpired:
    p.kill()
    print("still running after 20 s")
PY
# Ctrl-C stops it the same way, with no time limit.
rm status
($ERYX --timeout 0 -c 'while True: print("y" * 1000)' & pid=$!
 sleep 1; kill -INT $pid; wait $pid; echo "status $?" >status) 2>/dev/null | reader
