"""SQLite's default VFS in the guest ("unix" with the sandbox's own locks,
guest/sqlite_locks.c) against "unix-none" (no locks, the default until
2026-12-02), in one process, interleaved: COMMITS autocommit inserts (each
its own transaction: a lock taken and released, a journal written and
deleted) into a fresh database file, best of REPEATS per round, ROUNDS
rounds, the VFS order alternating. Prints one JSON line: per VFS the median
over rounds of the best, in seconds.

usage: sqlite_vfs.py [COMMITS] [REPEATS] [ROUNDS] [DIR]
DIR defaults to a fresh directory under the temporary directory (in eryx,
the sandbox's in-memory /tmp)."""
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time

commits = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
where = sys.argv[4] if len(sys.argv) > 4 else tempfile.gettempdir()


def once(vfs):
    tmp = tempfile.mkdtemp(dir=where)
    path = os.path.join(tmp, "bench.db")
    uri = f"file:{path}" + (f"?vfs={vfs}" if vfs else "")
    t0 = time.perf_counter()
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    for i in range(commits):
        db.execute("INSERT INTO t VALUES (?, ?)", (i, f"payload {i}"))
    n = db.execute("SELECT count(*) FROM t").fetchone()[0]
    t1 = time.perf_counter()
    db.close()
    os.remove(path)
    os.rmdir(tmp)
    assert n == commits
    return t1 - t0


runs = {"default": [], "unix-none": []}
for r in range(rounds):
    order = ["default", "unix-none"] if r % 2 == 0 else ["unix-none", "default"]
    for name in order:
        runs[name].append(min(once(None if name == "default" else name) for _ in range(repeats)))
print(json.dumps({"kernel": "sqlite_vfs", "commits": commits, "where": where,
                  **{k: statistics.median(v) for k, v in runs.items()}}))
