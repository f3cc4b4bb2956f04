# --trace FILE: the program's own line events as JSON lines (not json's),
# times in seconds, never decreasing; a file that cannot be written is a
# usage error before anything runs.
printf 'import json\n\ndef f(n):\n    return json.dumps(n)\n\nf(1)\nprint("done")\n' >prog.py
"$ERYX" --trace trace.jsonl prog.py || exit 1
python3 -c '
import json, sys
rows = [json.loads(l) for l in open("trace.jsonl")]
times = [r.pop("time") for r in rows]
assert times == sorted(times) and times[0] >= 0, times
for r in rows:
    print(r["file"], r["line"], r["function"])
'
# Names that JSON escapes, and events that alternate between functions
# (the CLI keeps the escaped names of recent events).
python3 -c '
open("q\"\\.py", "w", encoding="utf-8").write(
    "def g\u00e9():\n    return 1\n\nfor i in range(2):\n    g\u00e9()\n")'
"$ERYX" --trace trace2.jsonl 'q"\.py' || exit 1
python3 -c '
import json
for l in open("trace2.jsonl", encoding="utf-8"):
    r = json.loads(l)
    print(ascii(r["file"]), r["line"], ascii(r["function"]))
'
# A name the code made that is not UTF-8 (a lone surrogate) is written as
# Python's surrogateescape has it: the line stays UTF-8 JSON.
"$ERYX" --trace trace3.jsonl -c '
def f():
    return 1
f.__code__ = f.__code__.replace(co_name="a\udcffb")
f()' || exit 1
python3 -c '
import json
for l in open("trace3.jsonl", "rb"):
    r = json.loads(l.decode("utf-8"))
    if r["function"] != "<module>":
        print(ascii(r["function"]))
'
"$ERYX" --trace /nonexistent/dir/t.jsonl -c 'print(1)'
echo "status $?"
