/*
 * The session store of `eryx serve` (cli/serve_store.h), against the memory
 * store and against a real redis-server this program starts on a free
 * loopback port (in a temporary directory, no persistence) and kills.
 * Redis's faults are real: the server killed, stopped (SIGSTOP: slow), a
 * writer killed in the middle of a put, chunk bytes overwritten in Redis.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "check.h"
#include "serve_store.h"

/* ---- redis-server, ours -------------------------------------------------- */

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];
static char redis_url[128];
static const char *redis_pass; /* --requirepass, if set before redis_start */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &n) == 0);
    close(s);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static void redis_kill(void);

static void redis_start(void)
{
    if (!redis_port) {
        atexit(redis_kill);
        redis_port = free_port();
        snprintf(redis_dir, sizeof redis_dir, "/tmp/eryx-store-test-XXXXXX");
        REQUIRE(mkdtemp(redis_dir));
        /* Short time limits: the fault cases wait for them. */
        snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d?timeout_ms=300&retry_ms=1000",
                 redis_port);
    }
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    REQUIRE(redis_pid >= 0);
    if (redis_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a case that stops early takes it along */
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(ERYX_REDIS_SERVER, "redis-server", "--port", port, "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--dir", redis_dir, "--daemonize", "no",
              "--loglevel", "warning", redis_pass ? "--requirepass" : (char *)NULL, redis_pass,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !port_open(redis_port); i++)
        usleep(10000);
    REQUIRE(port_open(redis_port));
}

static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static void redis_cleanup(void)
{
    redis_kill();
    if (redis_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", redis_dir);
        CHECK_INT(system(cmd), 0);
    }
}

/* A direct connection, to look at and damage what the store wrote. */
static redisContext *redis_raw(void)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    REQUIRE(c && !c->err);
    return c;
}

static long long raw_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    REQUIRE(r && r->type == REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---- Helpers ------------------------------------------------------------- */

static store *open_store(const char *url)
{
    store *st = NULL;
    char err[256] = "";
    int rc = store_open(url, &st, err, sizeof err);
    if (rc != STORE_OK)
        fprintf(stderr, "store_open: %s\n", err);
    REQUIRE_INT(rc, STORE_OK);
    return st;
}

static double now_s(void) { return check_now_(); }

/* len bytes, zero except nz pseudo-random 64 KiB chunks picked by seed. */
static uint8_t *make_session(size_t len, unsigned nz, unsigned seed)
{
    uint8_t *p = calloc(len, 1);
    REQUIRE(p);
    size_t chunks = len / 65536;
    for (unsigned k = 0; k < nz && chunks; k++) {
        size_t c = (k * 7919u + seed) % chunks;
        for (size_t i = 0; i < 65536; i += 8) {
            uint64_t v = (c * 2654435761u + i * 40503u + seed) & 0xffff; /* compressible */
            memcpy(p + c * 65536 + i, &v, 8);
        }
    }
    return p;
}

/* Gets name and checks it holds exactly want[0..len). */
static void check_get(store *st, const char *name, const uint8_t *want, size_t len,
                      uint64_t version)
{
    int fd = memfd_create("session", 0);
    REQUIRE(fd >= 0);
    uint64_t v = 0;
    int rc = store_get(st, name, fd, &v);
    if (rc != STORE_OK)
        fprintf(stderr, "store_get: %s\n", store_errmsg());
    REQUIRE_INT(rc, STORE_OK);
    CHECK_INT(v, version);
    struct stat sb;
    REQUIRE(fstat(fd, &sb) == 0);
    CHECK_INT((uint64_t)sb.st_size, len);
    if (len) {
        uint8_t *got = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        REQUIRE(got != MAP_FAILED);
        CHECK(memcmp(got, want, len) == 0);
        munmap(got, len);
    }
    close(fd);
}

/* ---- Cases run on both stores -------------------------------------------- */

static void t_basic(const char *url)
{
    store *st = open_store(url);
    size_t len = 1 << 20;
    uint8_t *a = make_session(len, 5, 1), *b = make_session(len + 100, 6, 2);
    uint64_t v = 0, v0 = 0;
    CHECK_INT(store_create(st, "s1", a, len, &v0), STORE_OK);
    /* The first version: a random band, odd, exact in JSON. */
    CHECK(v0 >> 32 >= 1 && v0 < (1ull << 52) && (v0 & 0xffffffffu) == 1);
    CHECK_INT(store_create(st, "s1", a, len, &v), STORE_EXISTS);
    CHECK_CONTAINS(store_errmsg(), "exists");
    CHECK_INT(store_version(st, "s1", &v), STORE_OK);
    CHECK_INT(v, v0);
    check_get(st, "s1", a, len, v0);
    CHECK_INT(store_put(st, "s1", b, len + 100, v0, &v), STORE_OK);
    CHECK_INT(v, v0 + 1);
    CHECK_INT(store_put(st, "s1", a, len, v0, &v), STORE_CONFLICT);
    char at[64];
    snprintf(at, sizeof at, "version %llu", (unsigned long long)(v0 + 1));
    CHECK_CONTAINS(store_errmsg(), at);
    check_get(st, "s1", b, len + 100, v0 + 1);
    /* Empty and all-zero sessions. */
    CHECK_INT(store_put(st, "s1", NULL, 0, v0 + 1, &v), STORE_OK);
    check_get(st, "s1", NULL, 0, v0 + 2);
    CHECK_INT(store_delete(st, "s1"), STORE_OK);
    CHECK_INT(store_delete(st, "s1"), STORE_NOTFOUND);
    CHECK_INT(store_version(st, "s1", &v), STORE_NOTFOUND);
    CHECK_INT(store_get(st, "s1", 1, &v), STORE_NOTFOUND);
    CHECK_INT(store_put(st, "s1", a, len, v0 + 2, &v), STORE_NOTFOUND);
    /* Re-created after delete: its versions are none of the old one's, so
     * a put (or a journal token) based on one of those is refused. Two
     * more incarnations make a chance fault (2^-20 each) visible as one. */
    for (int again = 0; again < 3; again++) {
        CHECK_INT(store_create(st, "s1", a, 100, &v), STORE_OK);
        CHECK(v >> 32 != v0 >> 32);
        check_get(st, "s1", a, 100, v);
        CHECK_INT(store_put(st, "s1", a, 100, v0, NULL), STORE_CONFLICT);
        if (again < 2)
            CHECK_INT(store_delete(st, "s1"), STORE_OK);
    }
    /* Bad arguments. */
    CHECK_INT(store_create(st, "a b", a, len, &v), STORE_INVALID);
    CHECK_INT(store_create(st, "", a, len, &v), STORE_INVALID);
    CHECK_INT(store_create(st, "x{y}", a, len, &v), STORE_INVALID);
    char longname[STORE_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT(store_version(st, longname, &v), STORE_INVALID);
    CHECK_INT(store_put(st, "s1", a, len, 0, &v), STORE_INVALID);
    CHECK_INT(store_get(st, "s1", -1, &v), STORE_INVALID);
    CHECK_INT(store_create(st, "s2", NULL, 10, &v), STORE_INVALID);
    struct store_stats s;
    store_stats(st, &s);
    CHECK(s.ops[STORE_KIND_PUT] >= 8 && s.ops[STORE_KIND_GET] >= 6);
    uint64_t sum = 0;
    for (int i = 0; i < STORE_HIST_BUCKETS; i++)
        sum += s.hist[STORE_KIND_GET][i];
    CHECK_INT(sum, s.ops[STORE_KIND_GET]);
    CHECK(s.errors[STORE_KIND_PUT] >= 5); /* the INVALID ones */
    free(a);
    free(b);
    store_close(st);
}

/* Only the chunks the stored session lacks are sent. */
static void t_only_changed(const char *url)
{
    store *st = open_store(url);
    size_t len = 8 << 20; /* 128 chunks, 40 non-zero */
    uint8_t *a = make_session(len, 40, 3);
    struct store_stats s0, s1, s2;
    uint64_t v;
    REQUIRE_INT(store_create(st, "oc", a, len, &v), STORE_OK);
    store_stats(st, &s0);
    CHECK_INT(s0.chunks_uploaded, 40);
    CHECK(s0.bytes_uploaded < 40 * 65536 / 2); /* compressed */
    /* One byte changed in one chunk, one chunk zeroed, one new chunk. */
    size_t changed = 0, zeroed = 0, added = 0;
    for (size_t c = 0; c < len / 65536; c++) {
        int nz = a[c * 65536] | a[c * 65536 + 1];
        if (nz && !changed)
            changed = c;
        else if (nz && !zeroed)
            zeroed = c;
        else if (!nz && !added)
            added = c;
    }
    a[changed * 65536 + 100] ^= 0x5a;
    memset(a + zeroed * 65536, 0, 65536);
    memset(a + added * 65536, 0x11, 65536);
    uint64_t v0 = v;
    REQUIRE_INT(store_put(st, "oc", a, len, v0, &v), STORE_OK);
    store_stats(st, &s1);
    CHECK_INT(s1.chunks_uploaded - s0.chunks_uploaded, 2);
    CHECK_INT(s1.chunks_reused - s0.chunks_reused, 38);
    /* The same bytes again: nothing sent. */
    REQUIRE_INT(store_put(st, "oc", a, len, v0 + 1, &v), STORE_OK);
    store_stats(st, &s2);
    CHECK_INT(s2.chunks_uploaded, s1.chunks_uploaded);
    check_get(st, "oc", a, len, v0 + 2);
    if (url) { /* the zeroed chunk's and the changed chunk's old bytes are gone */
        redisContext *c = redis_raw();
        CHECK_INT(raw_int(c, "HLEN %s", "eryx:{oc}:c"), 40);
        redisFree(c);
    }
    free(a);
    store_close(st);
}

/* 64 MiB, almost all zero: sent and loaded as its few chunks; the file it
 * loads into stays sparse. */
static void t_sparse(const char *url)
{
    store *st = open_store(url);
    size_t len = 64 << 20;
    uint8_t *a = make_session(len, 12, 5);
    memset(a + len - 10, 0x77, 10); /* the last chunk too */
    uint64_t v;
    REQUIRE_INT(store_create(st, "big", a, len, &v), STORE_OK);
    struct store_stats s;
    store_stats(st, &s);
    CHECK_INT(s.chunks_uploaded, 13);
    int fd = memfd_create("big", 0);
    REQUIRE(fd >= 0);
    REQUIRE_INT(store_get(st, "big", fd, &v), STORE_OK);
    struct stat sb;
    REQUIRE(fstat(fd, &sb) == 0);
    CHECK_INT((uint64_t)sb.st_size, len);
    CHECK((uint64_t)sb.st_blocks * 512 <= 14 * 65536); /* sparse */
    close(fd);
    check_get(st, "big", a, len, v);
    free(a);
    store_close(st);
}

typedef struct lock_race {
    store *st;
    const char *url;
    int inside, max_inside, rounds;
} lock_race;

static void *lock_worker(void *arg)
{
    lock_race *r = arg;
    /* With Redis each thread is a replica with its own store. */
    store *st = r->url ? open_store(r->url) : r->st;
    for (int i = 0; i < r->rounds; i++) {
        struct store_lock *lk = NULL;
        int rc = store_lock(st, "locked", 5000, 5000, &lk);
        CHECK_INT(rc, STORE_OK);
        if (rc != STORE_OK)
            continue;
        int n = __atomic_add_fetch(&r->inside, 1, __ATOMIC_SEQ_CST);
        if (n > __atomic_load_n(&r->max_inside, __ATOMIC_SEQ_CST))
            __atomic_store_n(&r->max_inside, n, __ATOMIC_SEQ_CST);
        usleep(2000);
        __atomic_sub_fetch(&r->inside, 1, __ATOMIC_SEQ_CST);
        store_unlock(lk);
    }
    if (st != r->st)
        store_close(st);
    return NULL;
}

typedef struct lock_wait {
    store *st;
    int rc;
    double took, ended; /* the wait's length, and when it ended (now_s) */
} lock_wait;

static void *wait_for_L(void *arg)
{
    lock_wait *w = arg;
    struct store_lock *lk = NULL;
    double t0 = now_s();
    w->rc = store_lock(w->st, "L", 5000, 5000, &lk);
    w->ended = now_s();
    w->took = w->ended - t0;
    store_unlock(lk);
    return NULL;
}

/* store_stop_waits ends a wait in progress (a stopping server's request
 * waited out the 10 s past its 5 s grace) and later ones at once; a free
 * lock is still taken. Leaves the store stopped. */
static void t_lock_stopped(store *st)
{
    struct store_lock *a = NULL, *b = NULL;
    REQUIRE_INT(store_lock(st, "L", 5000, 0, &a), STORE_OK);
    lock_wait w = {st, -1, 0, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, wait_for_L, &w) == 0);
    usleep(200000);
    double stopped = now_s(); /* the waiter ends after it, however late it began */
    store_stop_waits(st);
    pthread_join(t, NULL);
    CHECK_INT(w.rc, STORE_STOPPED);
    CHECK(w.ended >= stopped && w.took < 2.0);
    CHECK_INT(store_lock(st, "L", 5000, 5000, &b), STORE_STOPPED);
    CHECK_INT(store_lock(st, "M", 5000, 5000, &b), STORE_OK);
    store_unlock(b);
    store_unlock(a);
}

static void t_lock(const char *url)
{
    store *st = open_store(url);
    /* Exclusion between threads. */
    lock_race r = {st, url, 0, 0, 15};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, lock_worker, &r);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(r.max_inside, 1);
    /* Held: another waits, then gets BUSY. */
    struct store_lock *a = NULL, *b = NULL, *c = NULL;
    /* (A TTL of 1 s: the refresh must come within it, after a 100 ms wait,
     * on a loaded machine.) */
    REQUIRE_INT(store_lock(st, "L", 1000, 0, &a), STORE_OK);
    double t0 = now_s();
    CHECK_INT(store_lock(st, "L", 300, 100, &b), STORE_BUSY);
    CHECK(now_s() - t0 >= 0.09 && now_s() - t0 < 1.0);
    CHECK_INT(store_lock_refresh(a), STORE_OK);
    /* Expiry: a's lock frees itself; b gets it; a has lost it. */
    t0 = now_s();
    CHECK_INT(store_lock(st, "L", 5000, 5000, &b), STORE_OK);
    CHECK(now_s() - t0 >= 0.5);
    CHECK_INT(store_lock_refresh(a), STORE_CONFLICT);
    store_unlock(a); /* not ours any more: b's stays */
    CHECK_INT(store_lock(st, "L", 300, 0, &c), STORE_BUSY);
    store_unlock(b);
    CHECK_INT(store_lock(st, "L", 300, 0, &c), STORE_OK);
    store_unlock(c);
    CHECK_INT(store_lock(st, "L", 0, 0, &c), STORE_INVALID);
    t_lock_stopped(st);
    store_close(st);
}

static void t_mark(const char *url)
{
    store *st = open_store(url);
    CHECK_INT(store_mark_once(st, "journal:1", 1000), STORE_OK);
    CHECK_INT(store_mark_once(st, "journal:1", 1000), STORE_EXISTS);
    CHECK_INT(store_mark_once(st, "journal:2", 1000), STORE_OK);
    usleep(1100000);
    CHECK_INT(store_mark_once(st, "journal:1", 1000), STORE_OK);
    /* A mark and a session lock of the same name are different things. */
    struct store_lock *lk = NULL;
    CHECK_INT(store_lock(st, "journal:1", 1000, 0, &lk), STORE_OK);
    store_unlock(lk);
    store_close(st);
}

typedef struct cas_race {
    store *st;
    const uint8_t *data;
    size_t len;
    int wins, conflicts;
} cas_race;

static void *cas_worker(void *arg)
{
    cas_race *r = arg;
    for (int i = 0; i < 20; i++) {
        uint64_t v = 0, nv = 0;
        REQUIRE_INT(store_version(r->st, "cas", &v), STORE_OK);
        int rc = store_put(r->st, "cas", r->data, r->len, v, &nv);
        if (rc == STORE_OK)
            __atomic_add_fetch(&r->wins, 1, __ATOMIC_SEQ_CST);
        else if (rc == STORE_CONFLICT)
            __atomic_add_fetch(&r->conflicts, 1, __ATOMIC_SEQ_CST);
        else
            CHECK_INT(rc, STORE_OK);
    }
    return NULL;
}

/* Writers racing without the lock: every put that wins advances the version
 * by exactly one, the others get CONFLICT. */
static void t_cas_race(const char *url)
{
    store *st = open_store(url);
    size_t len = 1 << 20;
    uint8_t *a = make_session(len, 8, 9);
    uint64_t v0;
    REQUIRE_INT(store_create(st, "cas", a, len, &v0), STORE_OK);
    cas_race r = {st, a, len, 0, 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, cas_worker, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    uint64_t v;
    REQUIRE_INT(store_version(st, "cas", &v), STORE_OK);
    CHECK_INT(v, v0 + (uint64_t)r.wins);
    CHECK_INT(r.wins + r.conflicts, 80);
    check_get(st, "cas", a, len, v);
    free(a);
    store_close(st);
}

typedef struct flip {
    store *st;
    const uint8_t *a, *b;
    size_t len;
    int stop, gets;
    uint64_t first;     /* the created version (odd) */
} flip;

/* Puts b, a, b, ... : odd versions hold a, even ones b. */
static void *flip_writer(void *arg)
{
    flip *f = arg;
    for (uint64_t v = f->first; !__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST); v++)
        REQUIRE_INT(store_put(f->st, "flip", v % 2 ? f->b : f->a, f->len, v, NULL), STORE_OK);
    return NULL;
}

/* Gets while another thread puts: every get is one whole version, its
 * bytes those of that version (a get whose chunks a put removed under it
 * starts again). */
static void t_read_during_put(const char *url)
{
    store *st = open_store(url);
    size_t len = 4 << 20;
    uint8_t *a = make_session(len, 30, 30), *b = make_session(len, 30, 31);
    uint64_t v0;
    REQUIRE_INT(store_create(st, "flip", a, len, &v0), STORE_OK);
    REQUIRE(v0 % 2 == 1);
    flip f = {st, a, b, len, 0, 0, v0};
    pthread_t t;
    pthread_create(&t, NULL, flip_writer, &f);
    int fd = memfd_create("flip", 0);
    for (int i = 0; i < 25; i++) {
        uint64_t v = 0;
        int rc = store_get(st, "flip", fd, &v);
        if (rc != STORE_OK)
            fprintf(stderr, "store_get: %s\n", store_errmsg());
        REQUIRE_INT(rc, STORE_OK);
        uint8_t *got = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        REQUIRE(got != MAP_FAILED);
        CHECK(memcmp(got, v % 2 ? a : b, len) == 0);
        munmap(got, len);
    }
    __atomic_store_n(&f.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    uint64_t v;
    REQUIRE_INT(store_version(st, "flip", &v), STORE_OK);
    CHECK(v > v0 + 1); /* the writer did write meanwhile */
    struct store_stats s;
    store_stats(st, &s);
    printf("%d gets during %llu puts, %llu restarted\n", 25, (unsigned long long)(v - v0),
           (unsigned long long)s.retries[STORE_KIND_GET]);
    close(fd);
    free(a);
    free(b);
    store_close(st);
}

/* len bytes that do not compress (xorshift from seed). */
static uint8_t *random_bytes(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len);
    REQUIRE(p);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, len - i < 8 ? len - i : 8);
    }
    return p;
}

/* A memory store with a bound: a put or create that would pass it fails
 * with STORE_FULL and leaves every session as it was; deleting frees
 * room. Sessions of three incompressible 64 KiB chunks (~197 KB each
 * stored) under 500,000 bytes: two fit, not three. */
TEST_CASE(mem_bounded)
{
    store *st = open_store("memory://?max_bytes=500000");
    size_t len = 3 * 65536;
    uint8_t *a = random_bytes(len, 1), *b = random_bytes(len, 2), *c = random_bytes(len, 3),
            *a2 = random_bytes(len, 4);
    uint64_t v, va, vb;
    CHECK_INT(store_create(st, "a", a, len, &va), STORE_OK);
    CHECK_INT(store_create(st, "b", b, len, &vb), STORE_OK);
    CHECK_INT(store_create(st, "c", c, len, &v), STORE_FULL);
    CHECK_CONTAINS(store_errmsg(), "the session store is full");
    CHECK_INT(store_version(st, "c", &v), STORE_NOTFOUND);
    CHECK_INT(store_delete(st, "c"), STORE_NOTFOUND);
    check_get(st, "a", a, len, va);
    check_get(st, "b", b, len, vb);
    CHECK_INT(store_delete(st, "b"), STORE_OK);
    CHECK_INT(store_create(st, "c", c, len, &v), STORE_OK);
    /* A put needs its new chunks stored before the old ones go. */
    CHECK_INT(store_put(st, "a", a2, len, va, &v), STORE_FULL);
    check_get(st, "a", a, len, va);
    CHECK_INT(store_delete(st, "c"), STORE_OK);
    CHECK_INT(store_put(st, "a", a2, len, va, &v), STORE_OK);
    check_get(st, "a", a2, len, va + 1);
    /* The old chunks went with the commit: room for another session. */
    CHECK_INT(store_create(st, "b", b, len, &vb), STORE_OK);
    check_get(st, "b", b, len, vb);
    store_close(st);
    const char *bad[] = {"memory://?max_bytes=0", "memory://?max_bytes=12k", "memory://?x=1",
                         "memory://?max_bytes=", "memory:x"};
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_INT(store_open(bad[i], &st, err, sizeof err), STORE_INVALID);
        CHECK_CONTAINS(err, "memory://?max_bytes=N");
    }
    st = open_store("memory://");
    CHECK_INT(store_create(st, "a", a, len, &v), STORE_OK);
    store_close(st);
    /* A session of zeros has no chunks, only a manifest, which may pass a
     * bound this small; the next chunk must still be refused. */
    st = open_store("memory://?max_bytes=1");
    uint8_t *zeros = calloc(len, 1);
    REQUIRE(zeros);
    CHECK_INT(store_create(st, "z", zeros, len, &v), STORE_OK);
    CHECK_INT(store_create(st, "a", a, len, &v), STORE_FULL);
    store_close(st);
    free(zeros);
    free(a);
    free(b);
    free(c);
    free(a2);
}

TEST_CASE(mem_basic) { t_basic(NULL); }
TEST_CASE(mem_read_during_put) { t_read_during_put(NULL); }
TEST_CASE(mem_only_changed) { t_only_changed(NULL); }
TEST_CASE(mem_sparse) { t_sparse(NULL); }
TEST_CASE(mem_lock) { t_lock(NULL); }
TEST_CASE(mem_mark) { t_mark(NULL); }
TEST_CASE(mem_cas_race) { t_cas_race(NULL); }

TEST_CASE(redis_basic) { redis_start(); t_basic(redis_url); redis_cleanup(); }
TEST_CASE(redis_read_during_put)
{
    redis_start();
    t_read_during_put(redis_url);
    redis_cleanup();
}
TEST_CASE(redis_only_changed) { redis_start(); t_only_changed(redis_url); redis_cleanup(); }
TEST_CASE(redis_sparse) { redis_start(); t_sparse(redis_url); redis_cleanup(); }
TEST_CASE(redis_lock) { redis_start(); t_lock(redis_url); redis_cleanup(); }
TEST_CASE(redis_mark) { redis_start(); t_mark(redis_url); redis_cleanup(); }
TEST_CASE(redis_cas_race) { redis_start(); t_cas_race(redis_url); redis_cleanup(); }

/* ---- Redis only ---------------------------------------------------------- */

TEST_CASE(redis_bad_url)
{
    store *st = NULL;
    char err[256];
    CHECK_INT(store_open("http://x:1", &st, err, sizeof err), STORE_INVALID);
    CHECK_CONTAINS(err, "bad Redis URL");
    CHECK_INT(store_open("redis://127.0.0.1", &st, err, sizeof err), STORE_INVALID);
    CHECK_INT(store_open("redis://127.0.0.1:0", &st, err, sizeof err), STORE_INVALID);
    CHECK_INT(store_open("redis://127.0.0.1:6379?bogus=1", &st, err, sizeof err), STORE_INVALID);
    CHECK_INT(store_open("redis://127.0.0.1:6379/x", &st, err, sizeof err), STORE_INVALID);
    /* Nobody listening: refused within the retry window. */
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?retry_ms=300", free_port());
    double t0 = now_s();
    CHECK_INT(store_open(url, &st, err, sizeof err), STORE_UNAVAILABLE);
    CHECK(now_s() - t0 < 1.0);
    CHECK_CONTAINS(err, "unavailable");
    CHECK(st == NULL);
    /* An IPv6 literal parses (nobody listens there either). */
    snprintf(url, sizeof url, "redis://[::1]:%d/2?timeout_ms=100&retry_ms=100", free_port());
    CHECK_INT(store_open(url, &st, err, sizeof err), STORE_UNAVAILABLE);
    CHECK_CONTAINS(err, "::1");
}

/* A password and a database number in the URL; a wrong password is
 * refused with Redis's reason. */
TEST_CASE(redis_auth)
{
    redis_pass = "s3cret";
    redis_start();
    char url[160], err[256];
    store *st = NULL;
    snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/3", redis_port);
    st = open_store(url);
    REQUIRE_INT(store_create(st, "in3", "abc", 3, NULL), STORE_OK);
    store_close(st);
    redisContext *c = redis_raw();
    freeReplyObject(redisCommand(c, "AUTH s3cret"));
    freeReplyObject(redisCommand(c, "SELECT 3"));
    CHECK_INT(raw_int(c, "EXISTS %s", "eryx:{in3}:m"), 1);
    redisFree(c);
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", redis_port);
    CHECK_INT(store_open(url, &st, err, sizeof err), STORE_UNAVAILABLE);
    CHECK_CONTAINS(err, "WRONGPASS");
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    CHECK_INT(store_open(url, &st, err, sizeof err), STORE_UNAVAILABLE);
    CHECK_CONTAINS(err, "NOAUTH");
    redis_cleanup();
}

/* Redis killed: UNAVAILABLE within the retry window, with a message; back
 * after a restart (on the same port) without reopening the store. */
TEST_CASE(redis_killed)
{
    redis_start();
    store *st = open_store(redis_url);
    uint8_t *a = make_session(1 << 20, 4, 11);
    uint64_t v, v0;
    REQUIRE_INT(store_create(st, "k", a, 1 << 20, &v0), STORE_OK);
    redis_kill();
    double t0 = now_s();
    CHECK_INT(store_version(st, "k", &v), STORE_UNAVAILABLE);
    double took = now_s() - t0;
    CHECK(took >= 0.5 && took < 2.0); /* retry_ms=1000 */
    CHECK_CONTAINS(store_errmsg(), "unavailable");
    /* The message reaches clients: it does not say where Redis is. */
    CHECK(strstr(store_errmsg(), "127.0.0.1") == NULL);
    CHECK_INT(store_put(st, "k", a, 1 << 20, v0, &v), STORE_UNAVAILABLE);
    struct store_lock *lk = NULL;
    CHECK_INT(store_lock(st, "k", 1000, 100, &lk), STORE_UNAVAILABLE);
    struct store_stats s;
    store_stats(st, &s);
    CHECK(s.retries[STORE_KIND_GET] > 0 && s.errors[STORE_KIND_GET] == 1);
    redis_start(); /* empty: no persistence */
    CHECK_INT(store_version(st, "k", &v), STORE_NOTFOUND);
    CHECK_INT(store_create(st, "k", a, 1 << 20, &v), STORE_OK);
    check_get(st, "k", a, 1 << 20, v);
    free(a);
    store_close(st);
    redis_cleanup();
}

/* Redis stopped (too slow to answer): the put times out; once Redis runs
 * again the session is complete, at the old version or the new one (a put
 * that fails UNAVAILABLE may or may not have switched), never in between. */
TEST_CASE(redis_stalled)
{
    redis_start();
    store *st = open_store(redis_url);
    size_t len = 2 << 20;
    uint8_t *a = make_session(len, 10, 12), *b = make_session(len, 12, 13);
    uint64_t v, v0;
    REQUIRE_INT(store_create(st, "slow", a, len, &v0), STORE_OK);
    kill(redis_pid, SIGSTOP);
    double t0 = now_s();
    CHECK_INT(store_put(st, "slow", b, len, v0, &v), STORE_UNAVAILABLE);
    CHECK(now_s() - t0 < 2.0);
    kill(redis_pid, SIGCONT);
    REQUIRE_INT(store_version(st, "slow", &v), STORE_OK);
    CHECK(v == v0 || v == v0 + 1);
    check_get(st, "slow", v == v0 ? a : b, len, v);
    free(a);
    free(b);
    store_close(st);
    redis_cleanup();
}

/* A writer killed in the middle of its puts: the session stays complete,
 * and the chunks it left are swept by the next put. */
TEST_CASE(redis_writer_killed)
{
    redis_start();
    store *st = open_store(redis_url);
    size_t len = 16 << 20;
    uint8_t *a = make_session(len, 200, 20);
    REQUIRE_INT(store_create(st, "w", a, len, NULL), STORE_OK);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) { /* puts new bytes forever */
            store *mine = open_store(redis_url);
            for (unsigned seed = 100 + (unsigned)round * 1000;; seed++) {
                uint8_t *b = make_session(len, 200, seed);
                uint64_t v;
                store_version(mine, "w", &v);
                store_put(mine, "w", b, len, v, NULL);
                free(b);
            }
        }
        usleep(150000 + (useconds_t)round * 37000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* Complete: whatever version, its chunks are all there and check. */
        int fd = memfd_create("w", 0);
        uint64_t v = 0;
        CHECK_INT(store_get(st, "w", fd, &v), STORE_OK);
        close(fd);
    }
    uint64_t v;
    REQUIRE_INT(store_version(st, "w", &v), STORE_OK);
    REQUIRE_INT(store_put(st, "w", a, len, v, &v), STORE_OK);
    redisContext *c = redis_raw();
    CHECK_INT(raw_int(c, "HLEN %s", "eryx:{w}:c"), 200);
    redisFree(c);
    check_get(st, "w", a, len, v);
    free(a);
    store_close(st);
    redis_cleanup();
}

/* Bytes changed in Redis behind the store's back are caught on load. */
TEST_CASE(redis_corrupt)
{
    redis_start();
    store *st = open_store(redis_url);
    size_t len = 1 << 20;
    uint8_t *a = make_session(len, 4, 14);
    REQUIRE_INT(store_create(st, "bad", a, len, NULL), STORE_OK);
    redisContext *c = redis_raw();
    redisReply *keys = redisCommand(c, "HKEYS %s", "eryx:{bad}:c");
    REQUIRE(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements == 4);
    /* A chunk holding another chunk's (valid) bytes: the hash differs. */
    redisReply *other = redisCommand(c, "HGET %s %b", "eryx:{bad}:c", keys->element[1]->str,
                                     keys->element[1]->len);
    REQUIRE(other && other->type == REDIS_REPLY_STRING);
    freeReplyObject(redisCommand(c, "HSET %s %b %b", "eryx:{bad}:c", keys->element[0]->str,
                                 keys->element[0]->len, other->str, other->len));
    int fd = memfd_create("bad", 0);
    uint64_t v;
    CHECK_INT(store_get(st, "bad", fd, &v), STORE_CORRUPT);
    CHECK_CONTAINS(store_errmsg(), "hash");
    /* Not zstd at all. */
    freeReplyObject(redisCommand(c, "HSET %s %b %s", "eryx:{bad}:c", keys->element[0]->str,
                                 keys->element[0]->len, "garbage"));
    CHECK_INT(store_get(st, "bad", fd, &v), STORE_CORRUPT);
    /* A chunk missing. */
    freeReplyObject(redisCommand(c, "HDEL %s %b", "eryx:{bad}:c", keys->element[0]->str,
                                 keys->element[0]->len));
    CHECK_INT(store_get(st, "bad", fd, &v), STORE_CORRUPT);
    CHECK_CONTAINS(store_errmsg(), "missing");
    /* The manifest. */
    freeReplyObject(redisCommand(c, "HSET %s m %s", "eryx:{bad}:m", "ERYXSM01short"));
    CHECK_INT(store_get(st, "bad", fd, &v), STORE_CORRUPT);
    freeReplyObject(redisCommand(c, "HSET %s v %s", "eryx:{bad}:m", "banana"));
    CHECK_INT(store_version(st, "bad", &v), STORE_CORRUPT);
    /* A put with the right base repairs it... the version is unreadable,
     * so it is deleted and created again. */
    CHECK_INT(store_delete(st, "bad"), STORE_OK);
    CHECK_INT(store_create(st, "bad", a, len, &v), STORE_OK);
    check_get(st, "bad", a, len, v);
    close(fd);
    freeReplyObject(other);
    freeReplyObject(keys);
    redisFree(c);
    free(a);
    store_close(st);
    redis_cleanup();
}

TEST_MAIN()
