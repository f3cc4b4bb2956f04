# --trace-max BYTES: the events stop at the limit, whole lines only; the
# last line and stderr say how many were dropped; the program runs on and
# its exit status is its own. 0 is no limit; alone it is a usage error.
printf 'for i in range(100):\n    x = i\nprint("ran", x)\n' >loop.py
"$ERYX" --trace all.jsonl --trace-max 0 loop.py 2>err.txt
echo "status $?, stderr $(wc -c <err.txt) bytes"
"$ERYX" --trace t.jsonl --trace-max 1k loop.py 2>err.txt
echo "status $?"
sed 's/[0-9]* bytes/N bytes/; s/ [0-9]* events/ M events/' err.txt
python3 -c '
import json
every = len(open("all.jsonl").read().splitlines())
lines = open("t.jsonl").read().splitlines()
rows = [json.loads(l) for l in lines]
last = rows.pop()
events = sum(len(l) + 1 for l in lines[:-1])
assert 900 < events <= 1024, events
assert all(set(r) == {"file", "line", "function", "time"} for r in rows)
assert last == {"truncated": True, "events_dropped": every - len(rows)}, (last, every)
print("cut at the limit, between lines")
'
"$ERYX" --trace-max 1k -c pass
echo "status $?"
