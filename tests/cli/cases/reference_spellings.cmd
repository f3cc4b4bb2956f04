# The reference CLI's spellings: -v/--volume (writable unless :ro), --net
# (every public host: loopback still refused), --allow-host (= --allow-net).
vol=$(mktemp -d) && echo hi >"$vol/a"
$ERYX -v "$vol:/data" -c 'open("/data/b", "w").write("from the sandbox"); print(open("/data/a").read(), end="")'
cat "$vol/b"; echo
$ERYX --volume "$vol:/data:ro" -c 'open("/data/c", "w")' 2>/dev/null; echo $?; test ! -e "$vol/c" && echo absent
$ERYX --volume "$vol:/data:xx" -c 1; echo $?
$ERYX --net -c 'import socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)
except PermissionError as e:
    print("refused:", "loopback" in str(e))'
$ERYX --allow-host 127.0.0.1:9 -c 'import socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)
except ConnectionRefusedError:
    print("allowed, and nobody listens")'
rm -rf "$vol"
