# The sandbox's stdin is read as the program reads it: a program that does
# not read it ends although the pipe stays open and idle (as a parent that
# never closes it leaves it); lines come as they are written; the time
# limit acts while the program waits for input.
exec 3< <(exec sleep 20)
idle=$!
timeout 10 $ERYX -c 'print("did not wait")' <&3
echo "status $?"
(echo first; sleep 0.3; echo second) | $ERYX -c '
import sys
print(input())
for line in sys.stdin:
    print("then", line.strip())'
timeout 10 $ERYX --timeout 500 -c 'import sys; sys.stdin.read()' <&3
echo "status $?"
kill $idle
