/* The guest's batteries through the API: SQLite on /tmp and on host mounts
 * (journal, rollback, a sandbox stopped in the middle of a transaction,
 * locks between a sandbox's connections, the dot-file VFS, read-only
 * mounts, randomness), compression modules on bad input, and time zones
 * read from the image only. docs/batteries.md. */
#include <eryx.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "../check.h"

static eryx_runtime *rt;

/* The sandbox of the running case and its host directory, cleaned by
 * teardown. */
static eryx_sandbox *case_sb;
static char case_dir[64];

static eryx_sandbox *sandbox_with(const eryx_mount *mounts, size_t n, uint64_t timeout_ns)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.mounts = mounts;
    cfg.n_mounts = n;
    if (timeout_ns)
        cfg.timeout_ns = timeout_ns;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK && sb);
    return sb;
}

/* Runs code and expects it to succeed; returns its stdout (freed with the
 * result, which the caller frees). */
static eryx_result *run_ok(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK)
        fprintf(stderr, "run: %s\n%s\n", eryx_errstr(rc), r && r->traceback ? r->traceback : "");
    CHECK_INT(rc, ERYX_OK);
    REQUIRE(r);
    return r;
}

static void expect(eryx_sandbox *sb, const char *code, const char *out)
{
    eryx_result *r = run_ok(sb, code);
    CHECK_STR(r->out, out);
    eryx_result_free(r);
}

static const char *make_case_dir(void)
{
    strcpy(case_dir, "/tmp/eryx-batteries-XXXXXX");
    REQUIRE(mkdtemp(case_dir) != NULL);
    return case_dir;
}

static void host_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", case_dir, name);
}

static int host_exists(const char *name)
{
    char p[256];
    struct stat st;
    host_path(p, sizeof p, name);
    return stat(p, &st) == 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names in the case's host directory, sorted, each followed by a
 * space. */
static void host_entries(char *out, size_t size)
{
    char *names[32];
    size_t n = 0;
    DIR *d = opendir(case_dir);
    REQUIRE(d != NULL);
    for (struct dirent *e; n < 32 && (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], compare_names);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s ", names[i]);
        free(names[i]);
    }
}

/* A database in the in-memory /tmp: the default journal mode is a rollback
 * journal that exists during a write transaction and is deleted at commit;
 * a failed transaction rolls back; WAL is not available (no shared memory)
 * and asking for it keeps the rollback journal. */
TEST_CASE(test_sqlite_tmp_transactions)
{
    eryx_sandbox *sb = case_sb = sandbox_with(NULL, 0, 0);
    expect(sb,
           "import os, sqlite3\n"
           "db = sqlite3.connect('/tmp/t.db')\n"
           "print(db.execute('PRAGMA journal_mode').fetchone()[0])\n"
           "db.execute('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)')\n"
           "db.commit()\n"
           "db.execute('INSERT INTO kv VALUES (?, ?)', ('a', 1))\n"
           "print(os.path.exists('/tmp/t.db-journal'))\n"
           "db.commit()\n"
           "print(os.path.exists('/tmp/t.db-journal'))\n"
           "try:\n"
           "    with db:\n"
           "        db.execute('INSERT INTO kv VALUES (?, ?)', ('b', 2))\n"
           "        db.execute('INSERT INTO kv VALUES (?, ?)', ('a', 3))\n"
           "except sqlite3.IntegrityError as e:\n"
           "    print('IntegrityError', e)\n"
           "db.close()\n"
           "db = sqlite3.connect('/tmp/t.db')\n"
           "print(db.execute('SELECT k, v FROM kv').fetchall())\n"
           "print(db.execute('PRAGMA journal_mode=WAL').fetchone()[0])\n"
           "print(db.execute('PRAGMA integrity_check').fetchone()[0])\n"
           "m = sqlite3.connect(':memory:')\n"
           "print(m.execute('SELECT sqlite_version() >= \"3.46\"').fetchone()[0])\n",
           "delete\nTrue\nFalse\nIntegrityError UNIQUE constraint failed: kv.k\n"
           "[('a', 1)]\ndelete\nok\n1\n");
}

/* A database in a writable host mount is an ordinary SQLite file on the
 * host, and a later sandbox reads what an earlier one wrote. */
TEST_CASE(test_sqlite_host_mount)
{
    const char *dir = make_case_dir();
    eryx_mount m = {.host_path = dir, .guest_path = "/data", .writable = 1};
    eryx_sandbox *sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "db = sqlite3.connect('/data/h.db')\n"
           "with db:\n"
           "    db.execute('CREATE TABLE t (x)')\n"
           "    db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(1000)])\n"
           "db.close()\n"
           "print('written')\n",
           "written\n");
    eryx_sandbox_free(sb);
    char p[256], head[16];
    host_path(p, sizeof p, "h.db");
    int fd = open(p, O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK_INT(read(fd, head, sizeof head), 16);
    close(fd);
    CHECK(memcmp(head, "SQLite format 3", 16) == 0);
    CHECK(!host_exists("h.db-journal"));

    sb = case_sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "print(sqlite3.connect('/data/h.db').execute('SELECT count(*), sum(x) FROM t')"
           ".fetchone())\n",
           "(1000, 499500)\n");
}

/* A read-only mount: the database reads, and a write is SQLite's error,
 * not a crash. */
TEST_CASE(test_sqlite_readonly_mount)
{
    const char *dir = make_case_dir();
    eryx_mount rw = {.host_path = dir, .guest_path = "/data", .writable = 1};
    eryx_sandbox *sb = sandbox_with(&rw, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "db = sqlite3.connect('/data/r.db')\n"
           "db.execute('CREATE TABLE t (x)'); db.execute('INSERT INTO t VALUES (42)')\n"
           "db.commit(); db.close()\n",
           "");
    eryx_sandbox_free(sb);
    eryx_mount ro = {.host_path = dir, .guest_path = "/data", .writable = 0};
    sb = case_sb = sandbox_with(&ro, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "db = sqlite3.connect('/data/r.db')\n"
           "print(db.execute('SELECT x FROM t').fetchall())\n"
           "try:\n"
           "    db.execute('INSERT INTO t VALUES (1)')\n"
           "except sqlite3.OperationalError as e:\n"
           "    print('OperationalError', e)\n"
           "try:\n"
           "    sqlite3.connect('/data/new.db').execute('CREATE TABLE u (y)')\n"
           "except sqlite3.OperationalError as e:\n"
           "    print('OperationalError', e)\n",
           "[(42,)]\nOperationalError attempt to write a readonly database\n"
           "OperationalError unable to open database file\n");
    CHECK(!host_exists("new.db"));
}

/* A sandbox stopped by its timeout in the middle of a write transaction
 * leaves a hot journal in the mount and no lock: the next sandbox that
 * opens the database rolls the journal back and sees the last commit
 * (why the locks are the sandbox's own: docs/batteries.md, "Locking"). */
TEST_CASE(test_sqlite_stopped_mid_transaction)
{
    const char *dir = make_case_dir();
    eryx_mount m = {.host_path = dir, .guest_path = "/data", .writable = 1};
    eryx_sandbox *sb = sandbox_with(&m, 1, 2000000000ull);
    expect(sb,
           "import sqlite3\n"
           "db = sqlite3.connect('/data/j.db')\n"
           "with db:\n"
           "    db.execute('CREATE TABLE t (x, pad)')\n"
           "    db.executemany('INSERT INTO t VALUES (?, ?)', [(i, 'x' * 200) for i in range(2000)])\n",
           "");
    /* A small page cache spills the transaction's pages into the database
     * file before the commit, so the file on the host is half-written. */
    const char *code = "db.execute('PRAGMA cache_size=5')\n"
                       "db.execute('BEGIN')\n"
                       "db.execute('UPDATE t SET x = -x, pad = ?', ('y' * 300,))\n"
                       "db.execute('INSERT INTO t SELECT x, pad FROM t')\n"
                       "while True:\n"
                       "    pass\n";
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_TIMEOUT);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    CHECK(host_exists("j.db-journal"));

    sb = case_sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "db = sqlite3.connect('/data/j.db')\n"
           "print(db.execute('SELECT count(*), sum(x), min(length(pad)) FROM t').fetchone())\n"
           "print(db.execute('PRAGMA integrity_check').fetchone()[0])\n",
           "(2000, 1999000, 200)\nok\n");
    CHECK(!host_exists("j.db-journal"));
}

/* Two connections of one sandbox to one file are kept apart, in /tmp and
 * in a host mount: while one writes, the other reads the last commit and
 * its own write is told "database is locked"; a lock lasts from one run of
 * the sandbox to the next (the connection does) and ends with the
 * transaction; another file is not locked by it. Nothing of the locks
 * reaches the host. */
TEST_CASE(test_sqlite_locks_between_connections)
{
    const char *dir = make_case_dir();
    eryx_mount m = {.host_path = dir, .guest_path = "/data", .writable = 1};
    eryx_sandbox *sb = case_sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import sqlite3\n"
           "def pair(path):\n"
           "    a = sqlite3.connect(path, timeout=0, isolation_level=None)\n"
           "    b = sqlite3.connect(path, timeout=0, isolation_level=None)\n"
           "    a.execute('CREATE TABLE t (x)')\n"
           "    a.execute('INSERT INTO t VALUES (1)')\n"
           "    a.execute('BEGIN IMMEDIATE')\n"
           "    a.execute('INSERT INTO t VALUES (2)')\n"
           "    return a, b\n"
           "def try_write(db):\n"
           "    try:\n"
           "        db.execute('INSERT INTO t VALUES (3)')\n"
           "        return 'written'\n"
           "    except sqlite3.OperationalError as e:\n"
           "        return str(e)\n"
           "for path in ('/tmp/l.db', '/data/l.db'):\n"
           "    a, b = pair(path)\n"
           "    print(b.execute('SELECT count(*) FROM t').fetchone()[0], try_write(b))\n"
           "    a.execute('COMMIT')\n"
           "    print(try_write(b), b.execute('SELECT count(*) FROM t').fetchone()[0])\n"
           "other = sqlite3.connect('/data/other.db', timeout=0, isolation_level=None)\n"
           "other.execute('CREATE TABLE t (x)')\n"
           "a, b = pair('/data/held.db')\n"
           "print(try_write(other))\n",
           "1 database is locked\nwritten 3\n"
           "1 database is locked\nwritten 3\n"
           "written\n");
    /* The next run: a still holds its transaction. */
    expect(sb, "print(try_write(b))\na.execute('ROLLBACK')\nprint(try_write(b))\n",
           "database is locked\nwritten\n");
    char entries[256];
    host_entries(entries, sizeof entries);
    CHECK_STR(entries, "held.db l.db other.db ");
}

/* The "unix-dotfile" VFS, chosen by URI, locks with a directory next to the
 * database (mkdir is atomic on every mount): visible during a write
 * transaction, gone after it. */
TEST_CASE(test_sqlite_dotfile_vfs)
{
    const char *dir = make_case_dir();
    eryx_mount m = {.host_path = dir, .guest_path = "/data", .writable = 1};
    eryx_sandbox *sb = case_sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import os, sqlite3\n"
           "db = sqlite3.connect('file:/data/d.db?vfs=unix-dotfile', uri=True,"
           " isolation_level=None)\n"
           "db.execute('CREATE TABLE t (x)')\n"
           "db.execute('BEGIN IMMEDIATE')\n"
           "db.execute('INSERT INTO t VALUES (1)')\n"
           "print(os.path.isdir('/data/d.db.lock'))\n"
           "db.execute('COMMIT')\n"
           "print(os.path.exists('/data/d.db.lock'))\n"
           "try:\n"
           "    sqlite3.connect('file:/data/d.db?vfs=nosuchvfs', uri=True)\n"
           "except sqlite3.OperationalError as e:\n"
           "    print('OperationalError', e)\n",
           "True\nFalse\nOperationalError no such vfs: nosuchvfs\n");
    CHECK(!host_exists("d.db.lock"));
}

/* SQLite's randomness comes from WASI's random_get, not the time of day:
 * two sandboxes started together draw different values. */
TEST_CASE(test_sqlite_randomness)
{
    const char *code = "import sqlite3\n"
                       "print(sqlite3.connect(':memory:').execute("
                       "'SELECT hex(randomblob(16))').fetchone()[0])\n";
    eryx_sandbox *a = sandbox_with(NULL, 0, 0), *b = sandbox_with(NULL, 0, 0);
    eryx_result *ra = run_ok(a, code), *rb = run_ok(b, code);
    CHECK_INT(ra->out_len, 33);
    CHECK_INT(rb->out_len, 33);
    CHECK(strcmp(ra->out, rb->out) != 0);
    eryx_result_free(ra);
    eryx_result_free(rb);
    eryx_sandbox_free(a);
    eryx_sandbox_free(b);
}

/* Damaged compressed data is the module's exception; the sandbox goes on. */
TEST_CASE(test_compression_bad_input)
{
    eryx_sandbox *sb = case_sb = sandbox_with(NULL, 0, 0);
    expect(sb,
           "import bz2, gzip, lzma, zlib, zipfile, io\n"
           "good = zlib.compress(b'hello' * 1000)\n"
           "for name, f, data in [\n"
           "        ('zlib', zlib.decompress, good[:-6] + b'\\0' * 6),\n"
           "        ('zlib', zlib.decompress, b'not zlib'),\n"
           "        ('gzip', gzip.decompress, b'\\x1f\\x8b\\x07' + b'\\0' * 20),\n"
           "        ('gzip', gzip.decompress, b'\\x1f\\x8b\\x08\\x00garbage'),\n"
           "        ('bz2', bz2.decompress, b'BZh9' + b'\\xff' * 64),\n"
           "        ('lzma', lzma.decompress, b'\\xfd7zXZ\\x00' + b'\\x01' * 64),\n"
           "        ('zip', lambda d: zipfile.ZipFile(io.BytesIO(d)), b'PK\\x03\\x04junk')]:\n"
           "    try:\n"
           "        f(data)\n"
           "        print(name, 'accepted')\n"
           "    except Exception as e:\n"
           "        print(name, type(e).__name__)\n"
           "print(zlib.decompress(good) == b'hello' * 1000)\n",
           "zlib error\nzlib error\ngzip BadGzipFile\ngzip EOFError\nbz2 OSError\n"
           "lzma LZMAError\n"
           "zip BadZipFile\nTrue\n");
}

/* Time zones come from the standard-library image, never from the host:
 * zoneinfo's search path is inside the image, and a directory mounted where
 * a Linux system keeps its zones is not consulted. */
TEST_CASE(test_zoneinfo_from_image)
{
    const char *dir = make_case_dir();
    char p[256];
    host_path(p, sizeof p, "Europe");
    REQUIRE(mkdir(p, 0755) == 0);
    host_path(p, sizeof p, "Europe/Paris");
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs("TZif not really", f);
    fclose(f);
    eryx_mount m = {.host_path = dir, .guest_path = "/usr/share/zoneinfo", .writable = 0};
    eryx_sandbox *sb = case_sb = sandbox_with(&m, 1, 0);
    expect(sb,
           "import zoneinfo, datetime as dt\n"
           "print(zoneinfo.TZPATH)\n"
           "utc = dt.timezone.utc\n"
           "for name in ('Europe/Paris', 'America/New_York'):\n"
           "    z = zoneinfo.ZoneInfo(name)\n"
           "    for m in (1, 7):\n"
           "        t = dt.datetime(2025, m, 15, 12, tzinfo=utc).astimezone(z)\n"
           "        print(name, t.utcoffset(), t.tzname())\n"
           "zones = zoneinfo.available_timezones()\n"
           "print(len(zones) > 590, 'Europe/Paris' in zones, 'US/Eastern' in zones)\n"
           "print([z for z in zones if z.startswith(('posix/', 'right/')) or z == 'localtime'])\n",
           "('/usr/lib/python3.13/zoneinfo-data',)\n"
           "Europe/Paris 1:00:00 CET\nEurope/Paris 2:00:00 CEST\n"
           "America/New_York -1 day, 19:00:00 EST\nAmerica/New_York -1 day, 20:00:00 EDT\n"
           "True True True\n[]\n");
}

static void setup(void)
{
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
}

/* Removes the case's host directory (flat, or one level of directories). */
static void remove_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (unlink(p) != 0 && depth < 3)
                remove_tree(p, depth + 1);
        }
        closedir(d);
    }
    rmdir(path);
}

static void teardown(void)
{
    eryx_sandbox_free(case_sb);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    if (case_dir[0])
        remove_tree(case_dir, 0);
}

TEST_MAIN_WITH(setup, teardown)
