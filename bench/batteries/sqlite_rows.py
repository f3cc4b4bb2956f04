"""SQLite: insert ROWS rows (executemany, one transaction) into a fresh
database, then a grouped query over them. Both times are reported, and
their sum as "seconds".

usage: sqlite_rows.py ROWS REPEATS memory|file
"file" puts the database in a fresh directory under the temporary directory
(in eryx, the sandbox's in-memory /tmp; natively, the host's /tmp)."""
import json
import os
import sqlite3
import sys
import tempfile
import time

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
where = sys.argv[3] if len(sys.argv) > 3 else "memory"
data = [(i, f"group{i % 100}", (i * 7919) % 10007 / 7.0, f"payload {i}") for i in range(rows)]
best = None
for _ in range(repeats):
    tmp = tempfile.mkdtemp() if where == "file" else None
    path = os.path.join(tmp, "bench.db") if tmp else ":memory:"
    t0 = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, grp TEXT, v REAL, note TEXT)")
    with db:
        db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", data)
    t1 = time.perf_counter()
    result = db.execute("SELECT grp, count(*), sum(v), avg(v), max(note) FROM t "
                        "GROUP BY grp ORDER BY sum(v) DESC").fetchall()
    t2 = time.perf_counter()
    db.close()
    if tmp:
        os.remove(path)
        os.rmdir(tmp)
    if best is None or t2 - t0 < best[0]:
        best = (t2 - t0, t1 - t0, t2 - t1)
check = f"{len(result)} {result[0][0]} {result[0][1]} {round(result[0][2], 3)}"
print(json.dumps({"kernel": f"sqlite_{where}", "seconds": best[0], "insert": best[1],
                  "query": best[2], "n": rows, "repeats": repeats,
                  "sqlite": sqlite3.sqlite_version, "check": check}))
