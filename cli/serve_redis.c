/*
 * The session store's Redis backend: hiredis (opened with dlopen on first
 * use), a pool of connections, a time limit on every command, and retries
 * with backoff and reconnection within a bounded time before
 * STORE_UNAVAILABLE.
 *
 * Keys, all of a session in one hash slot ({NAME}):
 *   eryx:{NAME}:m   hash: v = version (decimal), m = manifest
 *   eryx:{NAME}:c   hash: chunk hash (16 bytes) -> compressed chunk
 *   eryx:{NAME}:l   the session's lock: a random token, with an expiry
 *   eryx:mark:{KEY} a one-shot mark: a random token, with an expiry
 * The manifest switch, the lock's compare-token and the delete are Lua
 * scripts, so each is atomic in Redis. docs/serve.md, "Session store".
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "serve_store_int.h"

/* Idle connections kept for reuse; more are opened while more threads call
 * at once (the server bounds its own concurrency), and closed on release. */
#define POOL_IDLE 8
/* A retry waits 5 ms, then twice as long each time, at most this long. */
#define BACKOFF_MAX_MS 400
/* Not a status: a failure worth retrying (connection lost, timed out, or
 * Redis loading / failing over). */
#define AGAIN (-1)

/* ---- hiredis, opened on first use ---------------------------------------- */

static struct {
    redisContext *(*connect)(const char *, int, const struct timeval);
    int (*set_timeout)(redisContext *, const struct timeval);
    void (*free_ctx)(redisContext *);
    void *(*command_argv)(redisContext *, int, const char **, const size_t *);
    int (*append_argv)(redisContext *, int, const char **, const size_t *);
    int (*buffer_write)(redisContext *, int *);
    int (*get_reply)(redisContext *, void **);
    void (*free_reply)(void *);
    int loaded;
    char why[256];
} hr;
static pthread_once_t hr_once = PTHREAD_ONCE_INIT;

static void load_hiredis(void)
{
    void **ptrs[] = {(void **)&hr.connect,      (void **)&hr.set_timeout,
                     (void **)&hr.free_ctx,     (void **)&hr.command_argv,
                     (void **)&hr.append_argv,  (void **)&hr.buffer_write,
                     (void **)&hr.get_reply,    (void **)&hr.free_reply};
    static const char *const names[] = {"redisConnectWithTimeout", "redisSetTimeout",
                                        "redisFree",               "redisCommandArgv",
                                        "redisAppendCommandArgv",  "redisBufferWrite",
                                        "redisGetReply",           "freeReplyObject"};
    hr.loaded = store__dlopen(ERYX_HIREDIS_SONAME, names, ptrs, 8, hr.why, sizeof hr.why);
}

/* ---- Scripts ------------------------------------------------------------- */

/* The manifest switch. KEYS: meta, chunks. ARGV: base ("0": create), new
 * version, manifest, removed hashes (16 bytes each, back to back), the
 * number of distinct referenced hashes, those hashes, retry ("1" when an
 * earlier attempt may have run: our own manifest in place means it did).
 * Returns 1 done, 0 conflict, -1 not found, -2 exists. Chunks beyond the
 * referenced ones are leftovers of puts that died before their switch (or
 * lost it): swept here, where no put with an older base can still win. */
static const char commit_lua[] =
    "local v = redis.call('HGET', KEYS[1], 'v')\n"
    "if ARGV[7] == '1' and v == ARGV[2] and redis.call('HGET', KEYS[1], 'm') == ARGV[3] then\n"
    "  return 1 end\n"
    "if ARGV[1] == '0' then if v then return -2 end\n"
    "elseif not v then return -1\n"
    "elseif v ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'v', ARGV[2], 'm', ARGV[3])\n"
    "local rm = ARGV[4]\n"
    "for i = 1, #rm, 16 do redis.call('HDEL', KEYS[2], string.sub(rm, i, i + 15)) end\n"
    "if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[5]) then\n"
    "  local keep, refs = {}, ARGV[6]\n"
    "  for i = 1, #refs, 16 do keep[string.sub(refs, i, i + 15)] = true end\n"
    "  for _, h in ipairs(redis.call('HKEYS', KEYS[2])) do\n"
    "    if not keep[h] then redis.call('HDEL', KEYS[2], h) end end\n"
    "end\n"
    "return 1\n";

/* Takes KEYS[1] for token ARGV[1] for ARGV[2] ms unless another token holds
 * it; 1 if ours (a retry finds its own token), 0 if not. */
static const char acquire_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "return 0\n";

/* If KEYS[1] holds ARGV[1]: extends it by ARGV[2] ms, or deletes it if "0";
 * 1 if it held the token, 0 if not. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] == '0' then redis.call('DEL', KEYS[1])\n"
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return 1\n";

/* Deletes a session (UNLINK: its chunks are freed off Redis' main thread);
 * 1 if it existed. */
static const char delete_lua[] =
    "local e = redis.call('EXISTS', KEYS[1])\n"
    "redis.call('UNLINK', KEYS[1], KEYS[2])\n"
    "return e\n";

/* ---- Configuration and the pool ------------------------------------------ */

typedef struct rds {
    char host[256], user[128], pass[256];
    int port, db;
    unsigned timeout_ms, retry_ms;
    pthread_mutex_t mu;
    redisContext *idle[POOL_IDLE];
    int nidle;
} rds;

static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_query(rds *r, const char *q)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        unsigned long v;
        if (!eq || parse_uint(eq + 1, n - (size_t)(eq + 1 - q), 600000, &v) < 0 || v == 0)
            return -1;
        if ((size_t)(eq - q) == 10 && memcmp(q, "timeout_ms", 10) == 0)
            r->timeout_ms = (unsigned)v;
        else if ((size_t)(eq - q) == 8 && memcmp(q, "retry_ms", 8) == 0)
            r->retry_ms = (unsigned)v;
        else
            return -1;
        q += n + (q[n] == '&');
    }
    return 0;
}

/* redis://[[USER]:PASS@]HOST:PORT[/DB][?timeout_ms=N&retry_ms=N] */
static int parse_url(rds *r, const char *url)
{
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8, *end = p + strcspn(p, "/?");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || (size_t)(colon - p) >= sizeof r->user ||
            (size_t)(at - colon - 1) >= sizeof r->pass)
            return -1;
        memcpy(r->user, p, (size_t)(colon - p));
        memcpy(r->pass, colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *colon = end; /* the last ':' before end: IPv6 hosts have more */
    while (colon > p && *colon != ':')
        colon--;
    unsigned long port, db = 0;
    if (colon == p || *colon != ':' || (size_t)(colon - p) >= sizeof r->host ||
        parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &port) < 0 || port == 0)
        return -1;
    memcpy(r->host, p, (size_t)(colon - p));
    if (r->host[0] == '[') { /* [::1] */
        size_t n = strlen(r->host);
        if (n < 3 || r->host[n - 1] != ']')
            return -1;
        memmove(r->host, r->host + 1, n - 2);
        r->host[n - 2] = '\0';
    }
    r->port = (int)port;
    p = end;
    if (*p == '/') {
        size_t n = strcspn(p + 1, "?");
        if (n && parse_uint(p + 1, n, 1000, &db) < 0)
            return -1;
        p += 1 + n;
    }
    r->db = (int)db;
    return *p == '?' ? parse_query(r, p + 1) : 0;
}

static struct timeval tv_ms(unsigned ms)
{
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

static void flush_idle(rds *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->nidle)
        hr.free_ctx(r->idle[--r->nidle]);
    pthread_mutex_unlock(&r->mu);
}

/* A reply's status: OK, AGAIN for what a retry may cure, else a status with
 * the message. */
static int reply_status(redisContext *c, redisReply *rep)
{
    if (!rep)
        return store__fail(AGAIN, "%s", c->errstr[0] ? c->errstr : "connection lost");
    if (rep->type != REDIS_REPLY_ERROR)
        return STORE_OK;
    static const char *const transient[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                            "READONLY", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (strncmp(rep->str, transient[i], strlen(transient[i])) == 0)
            return store__fail(AGAIN, "Redis: %s", rep->str);
    return store__fail(strncmp(rep->str, "WRONGTYPE", 9) == 0 ? STORE_CORRUPT : STORE_UNAVAILABLE,
                       "Redis: %s", rep->str);
}

/* Runs a command; *out is the reply when OK (the caller frees it). */
static int command(redisContext *c, int argc, const char **argv, const size_t *lens,
                   redisReply **out)
{
    redisReply *rep = hr.command_argv(c, argc, argv, lens);
    int rc = reply_status(c, rep);
    if (rc == STORE_OK)
        *out = rep;
    else if (rep)
        hr.free_reply(rep);
    return rc;
}

/* A new connection, authenticated and on its database: OK with *out, AGAIN,
 * or a failure a retry would not cure (a wrong password). */
static int connect_new(rds *r, store_op *op, redisContext **out)
{
    redisContext *c = hr.connect(r->host, r->port, tv_ms(r->timeout_ms));
    *out = NULL;
    if (!c)
        return store__fail(AGAIN, "out of memory");
    store__count(op, STORE_C_CONNECT, 1);
    int rc = c->err ? store__fail(AGAIN, "%s", c->errstr) : STORE_OK;
    if (rc == STORE_OK && hr.set_timeout(c, tv_ms(r->timeout_ms)) != REDIS_OK)
        rc = store__fail(AGAIN, "%s", c->errstr);
    redisReply *rep = NULL;
    if (rc == STORE_OK && r->pass[0]) {
        const char *argv[] = {"AUTH", r->user, r->pass};
        rc = r->user[0] ? command(c, 3, argv, NULL, &rep)
                        : command(c, 2, (const char *[]){"AUTH", r->pass}, NULL, &rep);
        if (rep)
            hr.free_reply(rep);
        rep = NULL;
    }
    if (rc == STORE_OK && r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        rc = command(c, 2, (const char *[]){"SELECT", db}, NULL, &rep);
        if (rep)
            hr.free_reply(rep);
    }
    if (rc != STORE_OK) {
        hr.free_ctx(c);
        return rc;
    }
    *out = c;
    return STORE_OK;
}

/* ---- Retries ------------------------------------------------------------- */

typedef int (*attempt_fn)(redisContext *c, void *arg, int retry);

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* One attempt with SIGPIPE blocked on this thread, and one it raised taken
 * back: hiredis writes with write(), and Redis gone must not kill us (the
 * process-wide disposition stays as the embedder set it). */
static int attempt(redisContext *c, attempt_fn fn, void *arg, int retry)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = fn(c, arg, retry);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Runs fn on a pooled connection until it succeeds or fails for good, or
 * retry_ms since the operation began have passed. */
static int with_conn(rds *r, store_op *op, attempt_fn fn, void *arg)
{
    uint64_t deadline = op->start_ns + (uint64_t)r->retry_ms * 1000000u;
    unsigned pause = 5;
    for (int tries = 0;; tries++) {
        redisContext *c = NULL;
        pthread_mutex_lock(&r->mu);
        if (r->nidle)
            c = r->idle[--r->nidle];
        pthread_mutex_unlock(&r->mu);
        int rc = c ? STORE_OK : connect_new(r, op, &c);
        if (c)
            rc = attempt(c, fn, arg, tries > 0);
        if (rc != AGAIN && !c)
            return rc;
        if (rc != AGAIN) {
            pthread_mutex_lock(&r->mu);
            if (r->nidle < POOL_IDLE && !c->err)
                r->idle[r->nidle++] = c, c = NULL;
            pthread_mutex_unlock(&r->mu);
            if (c)
                hr.free_ctx(c);
            return rc;
        }
        /* The others idle are likely as dead as this one (Redis restarted). */
        if (c)
            hr.free_ctx(c);
        flush_idle(r);
        uint64_t now = store__now_ns();
        if (now + (uint64_t)pause * 1000000u >= deadline) {
            char why[400];
            snprintf(why, sizeof why, "%s", store_errmsg());
            /* Not the address: this text reaches clients (a failed
             * request's message); the "listening" log line has it, and
             * store__redis_open adds it for the operator. */
            return store__fail(STORE_UNAVAILABLE, "Redis unavailable (%d tries in %u ms): %s",
                               tries + 1,
                               (unsigned)((now - op->start_ns) / 1000000u), why);
        }
        sleep_ms(pause);
        pause = pause * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause * 2;
        store__count(op, STORE_C_RETRY, 1);
    }
}

/* ---- Operations ---------------------------------------------------------- */

static void key(char *out, size_t n, const char *name, char kind)
{
    snprintf(out, n, "eryx:{%s}:%c", name, kind);
}

static int eval(redisContext *c, const char *script, int nkeys, int argc, const char **argv,
                const size_t *lens, long long *out)
{
    char nk[4];
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char *av[16] = {"EVAL", script, nk};
    size_t al[16] = {4, strlen(script), strlen(nk)};
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens ? lens[i] : strlen(argv[i]);
    }
    redisReply *rep = NULL;
    int rc = command(c, 3 + argc, av, al, &rep);
    if (rc == STORE_OK && rep->type != REDIS_REPLY_INTEGER)
        rc = store__fail(STORE_UNAVAILABLE, "Redis: unexpected reply to a script");
    if (rc == STORE_OK)
        *out = rep->integer;
    if (rep)
        hr.free_reply(rep);
    return rc;
}

static int parse_version(const redisReply *v, uint64_t *out)
{
    if (v->type == REDIS_REPLY_NIL)
        return STORE_NOTFOUND;
    unsigned long long x = 0;
    int ok = v->type == REDIS_REPLY_STRING && v->len > 0 && v->len <= 20;
    for (size_t i = 0; ok && i < v->len; i++)
        ok = v->str[i] >= '0' && v->str[i] <= '9';
    if (ok)
        x = strtoull(v->str, NULL, 10);
    if (!ok || x == 0 || x == UINT64_MAX)
        return store__fail(STORE_CORRUPT, "stored version is not a number");
    *out = x;
    return STORE_OK;
}

typedef struct meta_args {
    const char *name;
    uint64_t *version;
    uint8_t **manifest;
    size_t *mlen;
} meta_args;

static int meta_try(redisContext *c, void *arg, int retry)
{
    meta_args *a = arg;
    char k[STORE_NAME_MAX + 16];
    key(k, sizeof k, a->name, 'm');
    redisReply *rep = NULL;
    int rc = a->manifest ? command(c, 4, (const char *[]){"HMGET", k, "v", "m"}, NULL, &rep)
                         : command(c, 3, (const char *[]){"HGET", k, "v"}, NULL, &rep);
    if (rc != STORE_OK)
        return rc;
    const redisReply *v = rep, *m = NULL;
    if (a->manifest) {
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
            rc = store__fail(STORE_UNAVAILABLE, "Redis: unexpected reply to HMGET");
        else
            v = rep->element[0], m = rep->element[1];
    }
    if (rc == STORE_OK)
        rc = parse_version(v, a->version);
    if (rc == STORE_OK && m) {
        if (m->type != REDIS_REPLY_STRING)
            rc = store__fail(STORE_CORRUPT, "session %s has a version but no manifest", a->name);
        else if (!(*a->manifest = malloc(m->len ? m->len : 1)))
            rc = store__fail(STORE_NOMEM, "out of memory");
        else {
            memcpy(*a->manifest, m->str, m->len);
            *a->mlen = m->len;
        }
    }
    hr.free_reply(rep);
    return rc;
}

static int r_meta(void *b, store_op *op, const char *name, uint64_t *version, uint8_t **manifest,
                  size_t *mlen)
{
    meta_args a = {name, version, manifest, mlen};
    *version = 0;
    return with_conn(b, op, meta_try, &a);
}

typedef struct chunks_args {
    const char *name;
    size_t n;
    const uint8_t *hashes;
    const void *const *data;
    const size_t *lens;
    store_chunk_fn fn;
    void *arg;
    store_op *op;
} chunks_args;

/* Chunks go one per command, pipelined: each command is written out before
 * the next is formatted, then the replies are read. (hiredis 0.14 moves the
 * rest of its output buffer after every partial write, and its reader's
 * buffer after every read: one command or reply of a few MB costs copies
 * quadratic in its size, measured at 4x the whole put; docs/serve.md.) */
static int send_one(redisContext *c, int argc, const char **av, const size_t *al)
{
    int done = 0;
    if (hr.append_argv(c, argc, av, al) != REDIS_OK)
        return store__fail(AGAIN, "%s", c->errstr);
    while (!done)
        if (hr.buffer_write(c, &done) != REDIS_OK)
            return store__fail(AGAIN, "%s", c->errstr);
    return STORE_OK;
}

/* The next pipelined reply: OK with *out set, or a failure. */
static int next_reply(redisContext *c, redisReply **out)
{
    void *rep = NULL;
    *out = NULL;
    if (hr.get_reply(c, &rep) != REDIS_OK || !rep)
        return store__fail(AGAIN, "%s", c->errstr[0] ? c->errstr : "connection lost");
    int rc = reply_status(c, rep);
    if (rc == STORE_OK)
        *out = rep;
    else
        hr.free_reply(rep);
    return rc;
}

/* Reads the replies still owed after a failure, so that the connection can
 * be reused; a connection that cannot is dropped by its error. */
static int drain(redisContext *c, size_t n, int rc)
{
    for (size_t i = 0; i < n && !c->err; i++) {
        redisReply *rep = NULL;
        next_reply(c, &rep);
        if (rep)
            hr.free_reply(rep);
    }
    return rc;
}

/* A put's chunks (a->data set: one HSET each) or a get's (one HGET each,
 * each reply handed to a->fn). */
static int chunks_try(redisContext *c, void *arg, int retry)
{
    chunks_args *a = arg;
    int put = a->data != NULL;
    char k[STORE_NAME_MAX + 16];
    key(k, sizeof k, a->name, 'c');
    int rc = STORE_OK;
    for (size_t i = 0; rc == STORE_OK && i < a->n; i++) {
        const char *av[] = {put ? "HSET" : "HGET", k, (const char *)a->hashes + i * STORE_HASH,
                            put ? a->data[i] : NULL};
        size_t al[] = {4, strlen(k), STORE_HASH, put ? a->lens[i] : 0};
        rc = send_one(c, put ? 4 : 3, av, al);
    }
    if (rc != STORE_OK) /* the connection has failed: it is dropped */
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        redisReply *e = NULL;
        rc = next_reply(c, &e);
        if (rc == STORE_OK && !put) {
            int have = e->type == REDIS_REPLY_STRING;
            if (!have && e->type != REDIS_REPLY_NIL)
                rc = store__fail(STORE_CORRUPT, "Redis: a chunk is not a string");
            if (have) {
                store__count(a->op, STORE_C_FETCHED, 1);
                store__count(a->op, STORE_C_FETCHED_BYTES, e->len);
            }
            if (rc == STORE_OK)
                rc = a->fn(a->arg, i, have ? e->str : NULL, have ? e->len : 0);
        }
        if (e)
            hr.free_reply(e);
        if (rc != STORE_OK)
            return rc == AGAIN ? rc : drain(c, a->n - i - 1, rc);
    }
    return STORE_OK;
}

static int r_put_chunks(void *b, store_op *op, const char *name, size_t n, const uint8_t *hashes,
                        const void *const *data, const size_t *lens)
{
    chunks_args a = {name, n, hashes, data, lens, NULL, NULL, op};
    return n ? with_conn(b, op, chunks_try, &a) : STORE_OK;
}

static int r_get_chunks(void *b, store_op *op, const char *name, size_t n, const uint8_t *hashes,
                        store_chunk_fn fn, void *arg)
{
    chunks_args a = {name, n, hashes, NULL, NULL, fn, arg, op};
    return with_conn(b, op, chunks_try, &a);
}

typedef struct commit_args {
    const char *name;
    const store_commit *c;
} commit_args;

static int commit_try(redisContext *c, void *arg, int retry)
{
    commit_args *a = arg;
    char km[STORE_NAME_MAX + 16], kc[STORE_NAME_MAX + 16], base[24], newv[24], nrefs[24];
    key(km, sizeof km, a->name, 'm');
    key(kc, sizeof kc, a->name, 'c');
    snprintf(base, sizeof base, "%llu", (unsigned long long)a->c->base);
    snprintf(newv, sizeof newv, "%llu", (unsigned long long)a->c->newv);
    snprintf(nrefs, sizeof nrefs, "%zu", a->c->nrefs);
    const char *av[] = {km, kc, base, newv, (const char *)a->c->manifest,
                        (const char *)a->c->removed, nrefs, (const char *)a->c->refs,
                        retry ? "1" : "0"};
    size_t al[] = {strlen(km), strlen(kc), strlen(base), strlen(newv), a->c->manifest_len,
                   a->c->nremoved * STORE_HASH, strlen(nrefs), a->c->nrefs * STORE_HASH, 1};
    long long res = 0;
    int rc = eval(c, commit_lua, 2, 9, av, al, &res);
    if (rc != STORE_OK)
        return rc;
    return res == 1 ? STORE_OK : res == 0 ? STORE_CONFLICT : res == -1 ? STORE_NOTFOUND : STORE_EXISTS;
}

static int r_commit(void *b, store_op *op, const char *name, const store_commit *c)
{
    commit_args a = {name, c};
    return with_conn(b, op, commit_try, &a);
}

static int del_try(redisContext *c, void *arg, int retry)
{
    char km[STORE_NAME_MAX + 16], kc[STORE_NAME_MAX + 16];
    key(km, sizeof km, arg, 'm');
    key(kc, sizeof kc, arg, 'c');
    long long res = 0;
    int rc = eval(c, delete_lua, 2, 2, (const char *[]){km, kc}, NULL, &res);
    /* A retry may find it deleted by the attempt whose reply was lost. */
    return rc != STORE_OK ? rc : res == 1 || retry ? STORE_OK : STORE_NOTFOUND;
}

static int r_del(void *b, store_op *op, const char *name)
{
    return with_conn(b, op, del_try, (void *)name);
}

typedef struct held_args {
    int ns, release;
    const char *name, *token;
    uint64_t ttl_ms;
} held_args;

static int held_try(redisContext *c, void *arg, int retry)
{
    held_args *a = arg;
    char k[STORE_NAME_MAX + 16], ttl[24];
    if (a->ns == STORE_NS_MARK)
        snprintf(k, sizeof k, "eryx:mark:{%s}", a->name);
    else
        key(k, sizeof k, a->name, 'l');
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)a->ttl_ms);
    long long res = 0;
    int rc = eval(c, a->release ? release_lua : acquire_lua, 1, 3,
                  (const char *[]){k, a->token, ttl}, NULL, &res);
    if (rc != STORE_OK)
        return rc;
    if (a->release)
        return res == 1 || (retry && a->ttl_ms == 0) ? STORE_OK : STORE_CONFLICT;
    return res == 1 ? STORE_OK : STORE_EXISTS;
}

static int r_acquire(void *b, store_op *op, int ns, const char *name, const char *token,
                     uint64_t ttl_ms)
{
    held_args a = {ns, 0, name, token, ttl_ms};
    return with_conn(b, op, held_try, &a);
}

static int r_release(void *b, store_op *op, int ns, const char *name, const char *token,
                     uint64_t ttl_ms)
{
    held_args a = {ns, 1, name, token, ttl_ms};
    return with_conn(b, op, held_try, &a);
}

static void r_close(void *b)
{
    rds *r = b;
    flush_idle(r);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static const store_backend redis_backend = {
    r_meta, r_put_chunks, r_commit, r_get_chunks, r_del, r_acquire, r_release, r_close,
};

static int ping_try(redisContext *c, void *arg, int retry)
{
    redisReply *rep = NULL;
    int rc = command(c, 1, (const char *[]){"PING"}, NULL, &rep);
    if (rep)
        hr.free_reply(rep);
    return rc;
}

int store__redis_open(const char *url, const store_backend **be, void **b, store *st)
{
    pthread_once(&hr_once, load_hiredis);
    if (!hr.loaded)
        return store__fail(STORE_UNAVAILABLE, "cannot load hiredis: %s", hr.why);
    rds *r = calloc(1, sizeof *r);
    if (!r)
        return store__fail(STORE_NOMEM, "out of memory");
    r->timeout_ms = 500;
    r->retry_ms = 2000;
    if (parse_url(r, url) < 0) {
        free(r);
        return store__fail(STORE_INVALID,
                           "bad Redis URL %s (redis://[[USER]:PASS@]HOST:PORT[/DB]"
                           "[?timeout_ms=N&retry_ms=N])", url);
    }
    pthread_mutex_init(&r->mu, NULL);
    store_op op = {st, STORE_KIND_GET, store__now_ns()};
    int rc = with_conn(r, &op, ping_try, NULL);
    if (rc != STORE_OK) {
        /* For the operator, at start-up: where it looked. */
        char why[400];
        snprintf(why, sizeof why, "%s", store_errmsg());
        store__fail(rc, "Redis at %s:%d: %s", r->host, r->port, why);
        r_close(r);
        return rc;
    }
    *be = &redis_backend;
    *b = r;
    return STORE_OK;
}
