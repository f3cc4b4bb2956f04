"""The guest's batteries (zlib, gzip, zipfile, bz2, lzma, sqlite3, zoneinfo)
against native CPython: run by tests/batteries/run.sh under both, on the same
inputs, through a shared directory.

    compare.py make DIR     compress the inputs and write a SQLite database
                            into DIR, with names starting with WHO (native
                            or guest, from sys.platform); also the list of
                            time zones, WHO.zones
    compare.py check DIR    read what the *other* side made in DIR and check
                            it decodes to the same inputs

Both steps print a report; run.sh compares the native and the guest reports
line by line. Compressed bytes are not compared: the guest's zlib and xz
are newer than the build machine's and may encode differently. What must
match is what the data decodes to, on either side.
"""

import bz2
import datetime
import gzip
import hashlib
import io
import lzma
import os
import sqlite3
import sys
import tempfile
import zipfile
import zlib
import zoneinfo

WHO = "guest" if sys.platform == "wasi" else "native"
OTHER = "native" if WHO == "guest" else "guest"


def inputs():
    """Deterministic test inputs: text, a repetitive log, and bytes that do
    not compress (from a hash chain), 1.5 MB in all."""
    text = ("".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n"
                    for i in range(8000))).encode()
    log = b"".join(b"GET /index.html 200 %d\n" % (i % 7) for i in range(20000))
    blocks, h = [], b"seed"
    for _ in range(16384):
        h = hashlib.sha256(h).digest()
        blocks.append(h)
    return {"text": text, "log": log, "random": b"".join(blocks), "empty": b""}


def digest(data):
    return f"{len(data)} {hashlib.sha256(data).hexdigest()[:16]}"


def compressors():
    return {
        "zlib": (lambda d: zlib.compress(d, 6), zlib.decompress),
        "zlib9": (lambda d: zlib.compress(d, 9), zlib.decompress),
        "deflate-raw": (lambda d: raw_deflate(d), lambda c: zlib.decompress(c, -15)),
        "gzip": (lambda d: gzip.compress(d, mtime=0), gzip.decompress),
        "bz2": (bz2.compress, bz2.decompress),
        "xz": (lzma.compress, lzma.decompress),
        "lzma-alone": (lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), lzma.decompress),
    }


def raw_deflate(d):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(d) + c.flush()


def report_compression(data):
    for name, (comp, decomp) in compressors().items():
        for key, value in data.items():
            blob = comp(value)
            ok = decomp(blob) == value
            print(f"roundtrip {name} {key}: {ok} {digest(value)}")
    # Streaming, in pieces: what gzip files and zip members do.
    for key, value in data.items():
        d = zlib.decompressobj()
        c = zlib.compressobj()
        blob = c.compress(value[:1000]) + c.compress(value[1000:]) + c.flush()
        out = b"".join(d.decompress(blob[i:i + 4096]) for i in range(0, len(blob), 4096))
        print(f"stream zlib {key}: {out + d.flush() == value}")
    print(f"crc32 {zlib.crc32(data['text']):08x} adler32 {zlib.adler32(data['text']):08x}")


def make(folder, data):
    comps = compressors()
    for name, (comp, _) in comps.items():
        for key, value in data.items():
            with open(os.path.join(folder, f"{WHO}.{name}.{key}"), "wb") as f:
                f.write(comp(value))
    with zipfile.ZipFile(os.path.join(folder, f"{WHO}.zip"), "w") as z:
        for key, value in data.items():
            for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                           zipfile.ZIP_LZMA):
                z.writestr(zipfile.ZipInfo(f"{key}.{method}", (2020, 1, 1, 0, 0, 0)), value,
                           compress_type=method)
    make_db(os.path.join(folder, f"{WHO}.db"))


def check(folder, data):
    for name, (_, decomp) in compressors().items():
        for key, value in data.items():
            with open(os.path.join(folder, f"{OTHER}.{name}.{key}"), "rb") as f:
                out = decomp(f.read())
            print(f"decode {name} {key} made by the other side: {out == value}")
    with zipfile.ZipFile(os.path.join(folder, f"{OTHER}.zip")) as z:
        for info in z.infolist():
            key = info.filename.split(".")[0]
            print(f"zip member {info.filename} {info.compress_type}: {z.read(info) == data[key]}")
    print("database made by the other side:")
    report_db(sqlite3.connect(os.path.join(folder, f"{OTHER}.db")))


# --- SQLite ---

def make_db(path):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, grp TEXT, x REAL, note TEXT)")
    with db:
        db.executemany("INSERT INTO t (grp, x, note) VALUES (?, ?, ?)",
                       ((f"g{i % 13}", (i * 7919 % 1000) / 8, f"note {i}") for i in range(5000)))
    db.execute("CREATE INDEX t_grp ON t (grp)")
    db.commit()
    db.close()


def report_db(db):
    q = [
        "SELECT grp, count(*), sum(x), min(x), max(x), round(avg(x), 6) FROM t GROUP BY grp ORDER BY grp",
        "SELECT count(DISTINCT grp), total(id) FROM t WHERE note LIKE 'note 1%'",
        "SELECT id, note FROM t WHERE x > 120 ORDER BY x DESC, id LIMIT 5",
        "SELECT grp, group_concat(id, ',') FROM (SELECT * FROM t WHERE id < 40 ORDER BY id) GROUP BY grp ORDER BY grp",
        "SELECT json_object('n', count(*), 'g', json_group_array(grp)) FROM (SELECT DISTINCT grp FROM t WHERE id % 1000 = 0 ORDER BY grp)",
        "SELECT printf('%.3f', sqrt(2)), round(exp(1), 9), lower(hex(zeroblob(3))), instr('abcdef', 'cd')",
        "SELECT date('2024-02-28', '+1 day'), strftime('%Y-%j', '2023-12-31'), julianday('2000-01-01')",
        "SELECT grp, x, rank() OVER (PARTITION BY grp ORDER BY x DESC, id) FROM t WHERE id <= 30 ORDER BY grp, 3 LIMIT 12",
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50) SELECT sum(n * n) FROM c",
    ]
    for sql in q:
        print(f"  {sql[:50]}: {db.execute(sql).fetchall()}")
    db.close()


def report_sqlite(folder):
    mem = sqlite3.connect(":memory:")
    mem.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    mem.executemany("INSERT INTO docs VALUES (?)",
                    [("the cat sat",), ("a dog barked",), ("the dog and the cat",)])
    print("fts5:", mem.execute("SELECT rowid FROM docs WHERE docs MATCH 'cat' ORDER BY rowid").fetchall())
    mem.execute("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)")
    mem.execute("INSERT INTO r VALUES (1, 0, 10), (2, 5, 15), (3, 20, 30)")
    print("rtree:", mem.execute("SELECT id FROM r WHERE x1 >= 8 AND x0 <= 12 ORDER BY id").fetchall())
    # Files: the default journal mode (a rollback journal, deleted at
    # commit), a rollback, a reopened file.
    path = os.path.join(folder, f"{WHO}.journal.db")
    for suffix in ("", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path)
    print("journal_mode:", db.execute("PRAGMA journal_mode").fetchone()[0])
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    with db:
        db.executemany("INSERT INTO kv VALUES (?, ?)", [(f"k{i}", i) for i in range(100)])
    try:
        with db:
            db.execute("UPDATE kv SET v = v + 1000")
            db.execute("INSERT INTO kv VALUES ('k5', 0)")   # duplicate key: rolls back
    except sqlite3.IntegrityError as e:
        print("rolled back:", e)
    print("journal deleted after the rollback:", not os.path.exists(path + "-journal"))
    db.close()
    db = sqlite3.connect(path)
    print("after reopen:", db.execute("SELECT count(*), sum(v) FROM kv").fetchone())
    print("integrity:", db.execute("PRAGMA integrity_check").fetchone()[0])
    db.close()
    os.remove(path)
    make_db(os.path.join(folder, f"{WHO}.own.db"))
    print("own database:")
    report_db(sqlite3.connect(os.path.join(folder, f"{WHO}.own.db")))
    os.remove(os.path.join(folder, f"{WHO}.own.db"))


# --- time zones ---

def report_zoneinfo(folder):
    zones = zoneinfo.available_timezones()
    with open(os.path.join(folder, f"{WHO}.zones"), "w") as f:
        f.write("".join(f"{z}\n" for z in sorted(zones)))
    print("zones > 590:", len(zones) > 590)
    for name in ("Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                 "America/St_Johns", "Pacific/Chatham", "US/Eastern", "Asia/Calcutta", "UTC"):
        print(f"{name} listed: {name in zones}")
        tz = zoneinfo.ZoneInfo(name)
        for when in ((2021, 1, 15, 12), (2021, 7, 15, 12), (2024, 3, 31, 0, 59), (2024, 3, 31, 1, 1),
                     (1995, 6, 1), (1970, 1, 1)):
            utc = datetime.datetime(*when, tzinfo=datetime.timezone.utc)
            local = utc.astimezone(tz)
            print(f"  {utc:%Y-%m-%d %H:%M}Z -> {local:%Y-%m-%d %H:%M} {local.tzname()} "
                  f"{local.utcoffset()} dst={local.dst()}")
    # A local time in a gap and a fold.
    ny = zoneinfo.ZoneInfo("America/New_York")
    for fold in (0, 1):
        t = datetime.datetime(2024, 11, 3, 1, 30, fold=fold, tzinfo=ny)
        print(f"fold={fold}: {t.utcoffset()} {t.tzname()}")
    try:
        zoneinfo.ZoneInfo("Nowhere/Atlantis")
    except zoneinfo.ZoneInfoNotFoundError as e:
        print("unknown zone:", type(e).__name__)


def main():
    step, folder = sys.argv[1], sys.argv[2]
    data = inputs()
    if step == "make":
        report_compression(data)
        report_sqlite(folder)             # a host directory (mounted, for the guest)
        report_sqlite(tempfile.mkdtemp())  # the guest's in-memory /tmp
        report_zoneinfo(folder)
        make(folder, data)
    elif step == "check":
        check(folder, data)
    else:
        sys.exit(f"compare.py: unknown step {step}")


if __name__ == "__main__":
    main()
