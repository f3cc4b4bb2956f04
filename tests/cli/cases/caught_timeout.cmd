# Code that catches the timeout's KeyboardInterrupt and ends within the
# grace: the limit passed all the same, so 124 and the message, as GNU
# timeout exits 124 for a command that handled its SIGTERM (it exited 0:
# untrusted code could hide its timeout). --stats says "stopped". A
# Ctrl-C the code catches ends as the code chose, as at Python's.
mkdir caught_timeout && cd caught_timeout  # its own directory: the cases share one
printf 'import time\ntry:\n    time.sleep(5)\nexcept KeyboardInterrupt:\n    print("caught")\n' >caught.py
$ERYX --timeout 200 caught.py; echo "status $?"
$ERYX --timeout 200 --stats caught.py 2>&1 >/dev/null | grep '^{' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["stopped"])'
$ERYX --stats -c pass 2>&1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["stopped"])'
