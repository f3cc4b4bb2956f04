/*
 * The session store's operations over a backend (serve_store_int.h): a
 * session's bytes cut into chunks, the zero ones skipped, the others hashed
 * (XXH3-128) and compressed (zstd, opened with dlopen), the manifest coded
 * and checked, and the per-thread message and counters. docs/serve.md,
 * "Session store".
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "serve_store_int.h"

/* Level 1 shrinks the non-zero chunks of real sessions 2.5-4.2x; level 3
 * saves 2-4% more bytes for 15-50% more time, level 6 6% for 3x the time
 * (docs/serve.md, "Session store"). */
#define STORE_ZSTD_LEVEL 1
/* Chunks handled per backend call: bounds a get's or put's memory (32
 * compressed chunks of at most ~64 KiB each) and a command's size. */
#define STORE_BATCH 32
/* A get that meets a chunk missing because a put replaced the session under
 * it starts again, this many times at most. */
#define STORE_GET_TRIES 3

/* Locks this store may have set without knowing it: a SET NX whose
 * answer never came (Redis stalled past the command's time limit, then went
 * on), or an unlock that could not be sent. Left alone, each would keep its
 * session locked until it expires (the lock's ttl); the next store_lock
 * frees them first, by their token (never another holder's). */
#define STORE_ORPHANS 16

typedef struct orphan {
    char name[STORE_NAME_MAX + 1];
    char token[33];
} orphan;

struct store {
    const store_backend *be;
    void *b;
    struct store_stats stats; /* updated with atomics */
    pthread_mutex_t orphan_mu;
    orphan orphans[STORE_ORPHANS];
    int n_orphans;
    atomic_int stop_waits;    /* store_stop_waits was called */
};

struct store_lock {
    store *st;
    uint64_t ttl_ms;
    char name[STORE_NAME_MAX + 1];
    char token[33];
};

const double store_hist_bounds_ms[STORE_HIST_BUCKETS - 1] = {1, 5, 10, 50, 100, 500, 1000};

/* ---- Messages ------------------------------------------------------------ */

static _Thread_local char msg[512];

const char *store_errmsg(void) { return msg; }

int store__fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rc;
}

const char *store_strstatus(int rc)
{
    static const char *const names[] = {
        "STORE_OK",          "STORE_NOTFOUND", "STORE_EXISTS", "STORE_BUSY",    "STORE_CONFLICT",
        "STORE_UNAVAILABLE", "STORE_CORRUPT",  "STORE_NOMEM",  "STORE_INVALID", "STORE_FULL",
        "STORE_STOPPED",
    };
    return rc >= 0 && (size_t)rc < sizeof names / sizeof names[0] ? names[rc] : "STORE_?";
}

uint64_t store__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- libzstd, opened on first use ---------------------------------------- */

static struct {
    ZSTD_CCtx *(*createCCtx)(void);
    size_t (*freeCCtx)(ZSTD_CCtx *);
    size_t (*compressCCtx)(ZSTD_CCtx *, void *, size_t, const void *, size_t, int);
    ZSTD_DCtx *(*createDCtx)(void);
    size_t (*freeDCtx)(ZSTD_DCtx *);
    size_t (*decompressDCtx)(ZSTD_DCtx *, void *, size_t, const void *, size_t);
    unsigned (*isError)(size_t);
    const char *(*getErrorName)(size_t);
    int loaded;
    char why[256];
} zs;
static pthread_once_t zs_once = PTHREAD_ONCE_INIT;

int store__dlopen(const char *soname, const char *const *names, void **const *ptrs, size_t n,
                  char *why, size_t whylen)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, whylen, "%s", dlerror());
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!(*ptrs[i] = dlsym(h, names[i]))) {
            snprintf(why, whylen, "%s has no %s", soname, names[i]);
            return 0;
        }
    return 1; /* the handle stays open for the process's life */
}

static void load_zstd(void)
{
    void **ptrs[] = {(void **)&zs.createCCtx, (void **)&zs.freeCCtx,
                     (void **)&zs.compressCCtx, (void **)&zs.createDCtx,
                     (void **)&zs.freeDCtx, (void **)&zs.decompressDCtx,
                     (void **)&zs.isError, (void **)&zs.getErrorName};
    static const char *const names[] = {"ZSTD_createCCtx", "ZSTD_freeCCtx", "ZSTD_compressCCtx",
                                        "ZSTD_createDCtx", "ZSTD_freeDCtx",
                                        "ZSTD_decompressDCtx", "ZSTD_isError",
                                        "ZSTD_getErrorName"};
    zs.loaded = store__dlopen(ERYX_ZSTD_SONAME, names, ptrs, 8, zs.why, sizeof zs.why);
}

static int zstd_ready(void)
{
    pthread_once(&zs_once, load_zstd);
    return zs.loaded ? STORE_OK : store__fail(STORE_UNAVAILABLE, "cannot load libzstd: %s", zs.why);
}

/* ---- Manifest ------------------------------------------------------------ */

static const char manifest_magic[8] = {'E', 'R', 'Y', 'X', 'S', 'M', '0', '1'};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

uint32_t store_manifest_index(const store_manifest *m, uint32_t i)
{
    return rd32(m->entries + (size_t)i * STORE_MANIFEST_ENTRY);
}

const uint8_t *store_manifest_hash(const store_manifest *m, uint32_t i)
{
    return m->entries + (size_t)i * STORE_MANIFEST_ENTRY + 4;
}

int store_manifest_decode(const uint8_t *p, size_t n, store_manifest *m)
{
    if (n < STORE_MANIFEST_HEAD || memcmp(p, manifest_magic, sizeof manifest_magic) != 0)
        return store__fail(STORE_CORRUPT, "session manifest: bad header");
    m->version = rd64(p + 8);
    m->length = rd64(p + 16);
    m->chunk_size = rd32(p + 24);
    m->count = rd32(p + 28);
    m->entries = p + STORE_MANIFEST_HEAD;
    /* Power-of-two chunk sizes from 4 KiB to 1 MiB: what a later writer
     * might choose, and small enough to decompress into one buffer. */
    uint32_t cs = m->chunk_size;
    if (cs < 4096 || cs > (1u << 20) || (cs & (cs - 1)) != 0)
        return store__fail(STORE_CORRUPT, "session manifest: chunk size %u", cs);
    if (m->version == 0 || m->length > STORE_MAX_LEN)
        return store__fail(STORE_CORRUPT, "session manifest: version %llu, length %llu",
                           (unsigned long long)m->version, (unsigned long long)m->length);
    uint64_t nchunks = (m->length + cs - 1) / cs;
    if (m->count > nchunks ||
        n - STORE_MANIFEST_HEAD != (uint64_t)m->count * STORE_MANIFEST_ENTRY)
        return store__fail(STORE_CORRUPT, "session manifest: %u chunks in %zu bytes", m->count, n);
    for (uint32_t i = 0; i < m->count; i++) {
        uint32_t ix = store_manifest_index(m, i);
        if (ix >= nchunks || (i > 0 && ix <= store_manifest_index(m, i - 1)))
            return store__fail(STORE_CORRUPT, "session manifest: chunk index %u out of order", ix);
    }
    return STORE_OK;
}

uint8_t *store_manifest_encode(uint64_t version, uint64_t length, uint32_t chunk_size,
                               uint32_t count, const uint32_t *index, const uint8_t *hashes,
                               size_t *n)
{
    *n = STORE_MANIFEST_HEAD + (size_t)count * STORE_MANIFEST_ENTRY;
    uint8_t *p = malloc(*n);
    if (!p)
        return NULL;
    memcpy(p, manifest_magic, sizeof manifest_magic);
    wr64(p + 8, version);
    wr64(p + 16, length);
    wr32(p + 24, chunk_size);
    wr32(p + 28, count);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *e = p + STORE_MANIFEST_HEAD + (size_t)i * STORE_MANIFEST_ENTRY;
        wr32(e, index[i]);
        memcpy(e + 4, hashes + (size_t)i * STORE_HASH, STORE_HASH);
    }
    return p;
}

/* ---- Counters ------------------------------------------------------------ */

static void add(uint64_t *c, uint64_t n) { __atomic_fetch_add(c, n, __ATOMIC_RELAXED); }

void store__count(store_op *op, int counter, uint64_t n)
{
    struct store_stats *s = &op->st->stats;
    switch (counter) {
    case STORE_C_RETRY: add(&s->retries[op->kind], n); break;
    case STORE_C_CONNECT: add(&s->connects, n); break;
    case STORE_C_FETCHED: add(&s->chunks_fetched, n); break;
    case STORE_C_FETCHED_BYTES: add(&s->bytes_fetched, n); break;
    }
}

_Static_assert(sizeof(struct store_stats) % sizeof(uint64_t) == 0,
               "store_stats is read as an array of counters");

void store_stats(store *st, struct store_stats *out)
{
    const uint64_t *src = (const uint64_t *)&st->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* Retry windows are a property of the Redis URL; the memory store never
 * retries. */
static store_op op_begin(store *st, int kind)
{
    msg[0] = '\0';
    return (store_op){st, kind, store__now_ns()};
}

/* Counts the finished operation and passes its status through. */
static int op_end(store_op *op, uint64_t t0, int rc)
{
    struct store_stats *s = &op->st->stats;
    uint64_t ns = store__now_ns() - t0;
    add(&s->ops[op->kind], 1);
    add(&s->latency_ns[op->kind], ns);
    size_t b = 0;
    while (b < STORE_HIST_BUCKETS - 1 && (double)ns / 1e6 > store_hist_bounds_ms[b])
        b++;
    add(&s->hist[op->kind][b], 1);
    if (rc != STORE_OK && rc != STORE_NOTFOUND && rc != STORE_EXISTS && rc != STORE_BUSY &&
        rc != STORE_CONFLICT && rc != STORE_STOPPED)
        add(&s->errors[op->kind], 1);
    return rc;
}

/* ---- Open and close ------------------------------------------------------ */

static void set_err(char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* NULL, "memory://" or "memory://?max_bytes=N": a store in this process. */
static int mem_open(const char *url, const store_backend **be, void **b)
{
    uint64_t max = 0;
    const char *q = url ? url + 7 : "";
    if (!strncmp(q, "//", 2))
        q += 2;
    if (*q) {
        char *end;
        errno = 0;
        unsigned long long v = strncmp(q, "?max_bytes=", 11) ? 0 : strtoull(q + 11, &end, 10);
        if (!v || errno || *end || q[11] < '0' || q[11] > '9')
            return store__fail(STORE_INVALID, "want memory:// or memory://?max_bytes=N (N > 0), "
                               "not %.100s", url);
        max = v;
    }
    return store__mem_open(max, be, b);
}

int store_open(const char *url, store **out, char *err, size_t errlen)
{
    msg[0] = '\0';
    if (!out) {
        store__fail(STORE_INVALID, "store_open: out is NULL");
        set_err(err, errlen);
        return STORE_INVALID;
    }
    *out = NULL;
    int rc = zstd_ready();
    store *st = rc == STORE_OK ? calloc(1, sizeof *st) : NULL;
    if (rc == STORE_OK && !st)
        rc = store__fail(STORE_NOMEM, "out of memory");
    if (rc == STORE_OK)
        rc = url && strncmp(url, "memory:", 7) != 0 ? store__redis_open(url, &st->be, &st->b, st)
                                                    : mem_open(url, &st->be, &st->b);
    if (rc != STORE_OK) {
        free(st);
        set_err(err, errlen);
        return rc;
    }
    pthread_mutex_init(&st->orphan_mu, NULL);
    *out = st;
    return STORE_OK;
}

void store_close(store *st)
{
    if (!st)
        return;
    st->be->close(st->b);
    pthread_mutex_destroy(&st->orphan_mu);
    free(st);
}

/* ---- Arguments ----------------------------------------------------------- */

static int valid_name(const char *name)
{
    if (!name)
        return store__fail(STORE_INVALID, "name is NULL");
    size_t n = strnlen(name, STORE_NAME_MAX + 1);
    if (n == 0 || n > STORE_NAME_MAX)
        return store__fail(STORE_INVALID, "a name has 1 to %d bytes", STORE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return store__fail(STORE_INVALID, "name %.*s: only [A-Za-z0-9._:-] are allowed",
                               (int)n, name);
    }
    return STORE_OK;
}

/* ---- Put ----------------------------------------------------------------- */

static int all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zero[256];
    for (; n >= sizeof zero; p += sizeof zero, n -= sizeof zero)
        if (memcmp(p, zero, sizeof zero) != 0)
            return 0;
    return memcmp(p, zero, n) == 0;
}

static int cmp_hash(const void *a, const void *b) { return memcmp(a, b, STORE_HASH); }

static int has_hash(const uint8_t *sorted, size_t n, const uint8_t *h)
{
    return n && bsearch(h, sorted, n, STORE_HASH, cmp_hash) != NULL;
}

/* Sorts n hashes and drops repeats; returns how many are left. */
static size_t sort_unique(uint8_t *h, size_t n)
{
    if (n == 0)
        return 0;
    qsort(h, n, STORE_HASH, cmp_hash);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (memcmp(h + i * STORE_HASH, h + (k - 1) * STORE_HASH, STORE_HASH) != 0)
            memmove(h + k++ * STORE_HASH, h + i * STORE_HASH, STORE_HASH);
    return k;
}

/* What a put works with: the new session's chunks and the stored one's. */
typedef struct put_plan {
    const uint8_t *data;
    size_t len;
    const uint8_t *has_data; /* per chunk, 0 = a hole of the file (zero, not
                                read); NULL = look at every chunk */
    uint32_t count;   /* non-zero chunks */
    uint32_t *index;  /* count of them */
    uint8_t *hashes;  /* count x STORE_HASH, in chunk order */
    uint8_t *refs;    /* the same, sorted and distinct: nrefs */
    size_t nrefs;
    uint8_t *old;     /* the stored manifest's hashes, sorted and distinct: nold */
    size_t nold;
} put_plan;

static void plan_free(put_plan *p)
{
    free(p->index);
    free(p->hashes);
    free(p->refs);
    free(p->old);
}

static int plan_chunks(put_plan *p)
{
    size_t nchunks = (p->len + STORE_CHUNK - 1) / STORE_CHUNK;
    p->index = malloc((nchunks ? nchunks : 1) * sizeof *p->index);
    p->hashes = malloc((nchunks ? nchunks : 1) * STORE_HASH);
    p->refs = malloc((nchunks ? nchunks : 1) * STORE_HASH);
    if (!p->index || !p->hashes || !p->refs)
        return store__fail(STORE_NOMEM, "out of memory");
    for (size_t i = 0; i < nchunks; i++) {
        size_t off = i * STORE_CHUNK, n = p->len - off < STORE_CHUNK ? p->len - off : STORE_CHUNK;
        if ((p->has_data && !p->has_data[i]) || all_zero(p->data + off, n))
            continue;
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(p->data + off, n));
        p->index[p->count] = (uint32_t)i;
        memcpy(p->hashes + (size_t)p->count * STORE_HASH, c.digest, STORE_HASH);
        p->count++;
    }
    memcpy(p->refs, p->hashes, (size_t)p->count * STORE_HASH);
    p->nrefs = sort_unique(p->refs, p->count);
    return STORE_OK;
}

/* The stored manifest's hashes; an undecodable one counts as empty, so that
 * a put can replace a damaged session (its chunks are then swept). */
static int plan_old(put_plan *p, const uint8_t *mbytes, size_t mlen)
{
    store_manifest m;
    char keep[sizeof msg];
    memcpy(keep, msg, sizeof msg);
    int ok = mbytes && store_manifest_decode(mbytes, mlen, &m) == STORE_OK;
    memcpy(msg, keep, sizeof msg);
    if (!ok || m.count == 0)
        return STORE_OK;
    if (!(p->old = malloc((size_t)m.count * STORE_HASH)))
        return store__fail(STORE_NOMEM, "out of memory");
    for (uint32_t i = 0; i < m.count; i++)
        memcpy(p->old + (size_t)i * STORE_HASH, store_manifest_hash(&m, i), STORE_HASH);
    p->nold = sort_unique(p->old, m.count);
    return STORE_OK;
}

/* Compresses and uploads the chunks the stored session lacks, a batch at a
 * time. */
static int upload(store_op *op, const char *name, put_plan *p)
{
    ZSTD_CCtx *cc = zs.createCCtx();
    size_t cap = ZSTD_COMPRESSBOUND(STORE_CHUNK);
    uint8_t *buf = malloc(STORE_BATCH * cap);
    uint8_t *sent = calloc(p->nrefs ? p->nrefs : 1, 1); /* by position in refs */
    int rc = cc && buf && sent ? STORE_OK : store__fail(STORE_NOMEM, "out of memory");
    size_t reused = 0;
    const void *data[STORE_BATCH];
    size_t lens[STORE_BATCH];
    uint8_t hashes[STORE_BATCH * STORE_HASH];
    size_t nb = 0;
    for (uint32_t i = 0; rc == STORE_OK && i <= p->count; i++) {
        if (i < p->count) {
            const uint8_t *h = p->hashes + (size_t)i * STORE_HASH;
            if (has_hash(p->old, p->nold, h)) {
                reused++;
                continue;
            }
            /* A chunk repeated within the session is sent once. */
            const uint8_t *r = bsearch(h, p->refs, p->nrefs, STORE_HASH, cmp_hash);
            size_t at = (size_t)(r - p->refs) / STORE_HASH;
            if (sent[at])
                continue;
            sent[at] = 1;
            size_t off = (size_t)p->index[i] * STORE_CHUNK;
            size_t n = p->len - off < STORE_CHUNK ? p->len - off : STORE_CHUNK;
            size_t z = zs.compressCCtx(cc, buf + nb * cap, cap, p->data + off, n, STORE_ZSTD_LEVEL);
            if (zs.isError(z)) {
                rc = store__fail(STORE_NOMEM, "zstd: %s", zs.getErrorName(z));
                break;
            }
            data[nb] = buf + nb * cap;
            lens[nb] = z;
            memcpy(hashes + nb * STORE_HASH, h, STORE_HASH);
            nb++;
        }
        if (nb == STORE_BATCH || (i == p->count && nb > 0)) {
            rc = op->st->be->put_chunks(op->st->b, op, name, nb, hashes, data, lens);
            for (size_t k = 0; k < nb && rc == STORE_OK; k++)
                add(&op->st->stats.bytes_uploaded, lens[k]);
            if (rc == STORE_OK)
                add(&op->st->stats.chunks_uploaded, nb);
            nb = 0;
        }
    }
    add(&op->st->stats.chunks_reused, reused);
    free(sent);
    free(buf);
    if (cc)
        zs.freeCCtx(cc);
    return rc;
}

/* The first version of a new session: 2^32 times a random band of 1 to
 * 2^20 - 1, plus one (under 2^52: exact in any JSON reader). A session
 * deleted and created again under its name starts elsewhere than before,
 * so a put or a journal token based on a version of the old one finds no
 * version of the new one to match, but for a chance of about 2^-20 (and
 * 2^32 puts to one session before its numbers could reach another band). */
static int first_version(uint64_t *v)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        return store__fail(STORE_UNAVAILABLE, "getrandom: %s", strerror(errno));
    *v = ((uint64_t)(r % 0xfffffu) + 1) << 32 | 1;
    return STORE_OK;
}

/* create (base 0) and put: upload what is missing, then switch. */
static int put_common(store *st, const char *name, const void *data, size_t len,
                      const uint8_t *has_data, uint64_t base, uint64_t *new_version)
{
    store_op op = op_begin(st, STORE_KIND_PUT);
    uint64_t t0 = op.start_ns;
    int rc = valid_name(name);
    if (rc == STORE_OK && ((!data && len) || len > STORE_MAX_LEN))
        rc = store__fail(STORE_INVALID, "session of %zu bytes (at most %llu)", len,
                         (unsigned long long)STORE_MAX_LEN);
    put_plan p = {.data = data, .len = len, .has_data = has_data};
    uint8_t *mbytes = NULL, *manifest = NULL;
    size_t mlen = 0, manifest_len = 0;
    uint64_t cur = 0, newv = base + 1;
    if (rc == STORE_OK && base == 0)
        rc = first_version(&newv);
    if (rc == STORE_OK) {
        rc = st->be->meta(st->b, &op, name, &cur, base ? &mbytes : NULL, &mlen);
        if (rc == STORE_NOTFOUND && base == 0)
            rc = STORE_OK;
        else if (rc == STORE_OK && base == 0)
            rc = store__fail(STORE_EXISTS, "session %s exists", name);
        else if (rc == STORE_NOTFOUND)
            store__fail(rc, "no session %s", name);
        else if (rc == STORE_OK && cur != base)
            rc = store__fail(STORE_CONFLICT, "session %s is at version %llu, not %llu", name,
                             (unsigned long long)cur, (unsigned long long)base);
    }
    if (rc == STORE_OK)
        rc = plan_chunks(&p);
    if (rc == STORE_OK)
        rc = plan_old(&p, mbytes, mlen);
    if (rc == STORE_OK)
        rc = upload(&op, name, &p);
    uint8_t *removed = NULL;
    size_t nremoved = 0;
    if (rc == STORE_OK) {
        manifest = store_manifest_encode(newv, len, STORE_CHUNK, p.count, p.index, p.hashes,
                                         &manifest_len);
        removed = malloc((p.nold ? p.nold : 1) * STORE_HASH);
        if (!manifest || !removed)
            rc = store__fail(STORE_NOMEM, "out of memory");
    }
    if (rc == STORE_OK) {
        for (size_t i = 0; i < p.nold; i++)
            if (!has_hash(p.refs, p.nrefs, p.old + i * STORE_HASH))
                memcpy(removed + nremoved++ * STORE_HASH, p.old + i * STORE_HASH, STORE_HASH);
        store_commit c = {base, newv, manifest, manifest_len, removed, nremoved, p.refs, p.nrefs};
        rc = st->be->commit(st->b, &op, name, &c);
        if (rc == STORE_CONFLICT)
            store__fail(rc, "session %s changed under this put (base version %llu)", name,
                        (unsigned long long)base);
        else if (rc == STORE_EXISTS)
            store__fail(rc, "session %s exists", name);
        else if (rc == STORE_NOTFOUND)
            store__fail(rc, "no session %s", name);
    }
    if (rc == STORE_OK && new_version)
        *new_version = newv;
    free(removed);
    free(manifest);
    free(mbytes);
    plan_free(&p);
    return op_end(&op, t0, rc);
}

int store_create(store *st, const char *name, const void *data, size_t len, uint64_t *version)
{
    return put_common(st, name, data, len, NULL, 0, version);
}

static int store_put_checked(store *st, const char *name, const void *data, size_t len,
                             const uint8_t *has_data, uint64_t base_version,
                             uint64_t *new_version)
{
    if (base_version == 0 || base_version == UINT64_MAX) { /* counted like the others */
        store_op op = op_begin(st, STORE_KIND_PUT);
        return op_end(&op, op.start_ns, store__fail(STORE_INVALID, "base version %llu",
                                                    (unsigned long long)base_version));
    }
    return put_common(st, name, data, len, has_data, base_version, new_version);
}

int store_put(store *st, const char *name, const void *data, size_t len, uint64_t base_version,
              uint64_t *new_version)
{
    return store_put_checked(st, name, data, len, NULL, base_version, new_version);
}

/* Which chunks of fd hold data (SEEK_DATA / SEEK_HOLE): the others are
 * holes, zero without being read. Reading a hole of a memfd through a
 * mapping would allocate a page for it (shmem faults allocate): on a
 * sparse 20 MiB session that was most of a put's time. */
static uint8_t *data_chunks(int fd, size_t len)
{
    size_t n = (len + STORE_CHUNK - 1) / STORE_CHUNK;
    uint8_t *mask = calloc(n ? n : 1, 1);
    if (!mask)
        return NULL;
    off_t pos = 0;
    while ((size_t)pos < len) {
        off_t start = lseek(fd, pos, SEEK_DATA);
        if (start < 0)
            break; /* ENXIO: no data past pos */
        off_t end = lseek(fd, start, SEEK_HOLE);
        if (end < 0 || (size_t)end > len)
            end = (off_t)len;
        for (size_t c = (size_t)start / STORE_CHUNK; c * STORE_CHUNK < (size_t)end; c++)
            mask[c] = 1;
        pos = end;
    }
    return mask;
}

int store_put_fd(store *st, const char *name, int fd, uint64_t base_version,
                 uint64_t *new_version)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size <= 0)
        return store__fail(STORE_INVALID, "fd %d is not a non-empty file", fd);
    size_t len = (size_t)sb.st_size;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    uint8_t *mask = p != MAP_FAILED ? data_chunks(fd, len) : NULL;
    int rc;
    if (p == MAP_FAILED || !mask)
        rc = store__fail(STORE_NOMEM, "cannot map fd %d", fd);
    else if (base_version == 0)
        rc = put_common(st, name, p, len, mask, 0, new_version);
    else
        rc = store_put_checked(st, name, p, len, mask, base_version, new_version);
    free(mask);
    if (p != MAP_FAILED)
        munmap(p, len);
    return rc;
}

/* ---- Get ----------------------------------------------------------------- */

typedef struct get_ctx {
    const store_manifest *m;
    uint32_t first;  /* the batch's first entry */
    int fd;
    ZSTD_DCtx *dc;
    uint8_t *buf;    /* one chunk */
    int missing;
} get_ctx;

/* Checks one fetched chunk against the manifest and writes it. */
static int get_chunk(void *arg, size_t i, const void *data, size_t len)
{
    get_ctx *g = arg;
    uint32_t e = g->first + (uint32_t)i;
    uint64_t off = (uint64_t)store_manifest_index(g->m, e) * g->m->chunk_size;
    size_t want = g->m->length - off < g->m->chunk_size ? (size_t)(g->m->length - off)
                                                         : g->m->chunk_size;
    if (!data) {
        g->missing = 1;
        return store__fail(STORE_CORRUPT, "chunk %u is missing", store_manifest_index(g->m, e));
    }
    size_t n = zs.decompressDCtx(g->dc, g->buf, want, data, len);
    XXH128_canonical_t c;
    if (!zs.isError(n) && n == want)
        XXH128_canonicalFromHash(&c, XXH3_128bits(g->buf, n));
    if (zs.isError(n) || n != want || memcmp(c.digest, store_manifest_hash(g->m, e), STORE_HASH))
        return store__fail(STORE_CORRUPT, "chunk %u fails its check (%s)",
                           store_manifest_index(g->m, e),
                           zs.isError(n) ? zs.getErrorName(n) : n != want ? "length" : "hash");
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(g->fd, g->buf + done, n - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return store__fail(STORE_INVALID, "writing the session: %s", strerror(errno));
        done += (size_t)w;
    }
    return STORE_OK;
}

/* One attempt at reading the session as its manifest says. */
static int get_once(store_op *op, const char *name, int fd, uint64_t *version, int *missing)
{
    store *st = op->st;
    uint8_t *mbytes = NULL;
    size_t mlen = 0;
    uint64_t v = 0;
    store_manifest m;
    get_ctx g = {.m = &m, .fd = fd};
    int rc = st->be->meta(st->b, op, name, &v, &mbytes, &mlen);
    if (rc == STORE_NOTFOUND)
        store__fail(rc, "no session %s", name);
    if (rc == STORE_OK)
        rc = store_manifest_decode(mbytes, mlen, &m);
    if (rc == STORE_OK && m.version != v)
        rc = store__fail(STORE_CORRUPT, "session %s: manifest of version %llu at version %llu",
                         name, (unsigned long long)m.version, (unsigned long long)v);
    if (rc == STORE_OK && (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)m.length) < 0))
        rc = store__fail(STORE_INVALID, "sizing the session's file: %s", strerror(errno));
    if (rc == STORE_OK) {
        g.dc = zs.createDCtx();
        g.buf = malloc(m.chunk_size);
        if (!g.dc || !g.buf)
            rc = store__fail(STORE_NOMEM, "out of memory");
    }
    uint8_t hashes[STORE_BATCH * STORE_HASH];
    for (uint32_t i = 0; rc == STORE_OK && i < m.count; i += STORE_BATCH) {
        uint32_t n = m.count - i < STORE_BATCH ? m.count - i : STORE_BATCH;
        for (uint32_t k = 0; k < n; k++)
            memcpy(hashes + k * STORE_HASH, store_manifest_hash(&m, i + k), STORE_HASH);
        g.first = i;
        rc = st->be->get_chunks(st->b, op, name, n, hashes, get_chunk, &g);
    }
    if (rc == STORE_OK)
        *version = v;
    *missing = g.missing;
    free(g.buf);
    if (g.dc)
        zs.freeDCtx(g.dc);
    free(mbytes);
    return rc;
}

int store_get(store *st, const char *name, int fd, uint64_t *version)
{
    store_op op = op_begin(st, STORE_KIND_GET);
    uint64_t t0 = op.start_ns, v = 0;
    int rc = valid_name(name);
    if (rc == STORE_OK && fd < 0)
        rc = store__fail(STORE_INVALID, "fd %d", fd);
    for (int tries = 0; rc == STORE_OK; tries++) {
        int missing = 0;
        rc = get_once(&op, name, fd, &v, &missing);
        if (rc != STORE_CORRUPT || !missing || tries + 1 == STORE_GET_TRIES)
            break;
        /* A chunk went missing: a put replaced the session while we read
         * it (start again), unless the version is unchanged (corrupt). */
        uint64_t now = 0;
        int vrc = st->be->meta(st->b, &op, name, &now, NULL, NULL);
        if (vrc != STORE_OK || now == v)
            break;
        store__count(&op, STORE_C_RETRY, 1);
        rc = STORE_OK;
    }
    if (rc == STORE_OK && version)
        *version = v;
    return op_end(&op, t0, rc);
}

int store_version(store *st, const char *name, uint64_t *version)
{
    store_op op = op_begin(st, STORE_KIND_GET);
    uint64_t t0 = op.start_ns, v = 0;
    int rc = valid_name(name);
    if (rc == STORE_OK)
        rc = st->be->meta(st->b, &op, name, &v, NULL, NULL);
    if (rc == STORE_NOTFOUND)
        store__fail(rc, "no session %s", name);
    if (version)
        *version = rc == STORE_OK ? v : 0;
    return op_end(&op, t0, rc);
}

int store_delete(store *st, const char *name)
{
    store_op op = op_begin(st, STORE_KIND_PUT);
    uint64_t t0 = op.start_ns;
    int rc = valid_name(name);
    if (rc == STORE_OK)
        rc = st->be->del(st->b, &op, name);
    if (rc == STORE_NOTFOUND)
        store__fail(rc, "no session %s", name);
    return op_end(&op, t0, rc);
}

/* ---- Locks and marks ----------------------------------------------------- */

static int new_token(char out[33])
{
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return store__fail(STORE_UNAVAILABLE, "getrandom: %s", strerror(errno));
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return STORE_OK;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* strlcpy: the names and tokens fit (checked where they come in), but gcc's
 * -O3 cannot see it through the orphan list and warns of a snprintf. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Remembers a lock that may be set in the store (the oldest one goes when
 * the list is full: it expires by itself all the same). */
static void add_orphan(store *st, const char *name, const char *token)
{
    pthread_mutex_lock(&st->orphan_mu);
    if (st->n_orphans == STORE_ORPHANS)
        memmove(st->orphans, st->orphans + 1, (STORE_ORPHANS - 1) * sizeof *st->orphans);
    else
        st->n_orphans++;
    orphan *o = &st->orphans[st->n_orphans - 1];
    copy_cut(o->name, sizeof o->name, name);
    copy_cut(o->token, sizeof o->token, token);
    pthread_mutex_unlock(&st->orphan_mu);
}

/* Frees the orphans it can; those the store cannot be asked about now
 * stay for the next time. */
static void free_orphans(store *st)
{
    orphan list[STORE_ORPHANS];
    pthread_mutex_lock(&st->orphan_mu);
    int n = st->n_orphans;
    memcpy(list, st->orphans, (size_t)n * sizeof *list);
    st->n_orphans = 0;
    pthread_mutex_unlock(&st->orphan_mu);
    for (int i = 0; i < n; i++) {
        store_op op = op_begin(st, STORE_KIND_LOCK);
        int rc = st->be->release(st->b, &op, STORE_NS_LOCK, list[i].name, list[i].token, 0);
        op_end(&op, op.start_ns, rc == STORE_CONFLICT ? STORE_OK : rc);
        if (rc != STORE_OK && rc != STORE_CONFLICT)
            add_orphan(st, list[i].name, list[i].token);
    }
}

int store_lock(store *st, const char *name, uint64_t ttl_ms, uint64_t wait_ms,
               struct store_lock **out)
{
    if (st)
        free_orphans(st);
    store_op op = op_begin(st, STORE_KIND_LOCK);
    uint64_t t0 = op.start_ns;
    int rc = valid_name(name);
    if (rc == STORE_OK && (!out || ttl_ms == 0 || ttl_ms > UINT32_MAX))
        rc = store__fail(STORE_INVALID, "store_lock: ttl_ms must be 1..2^32-1, out non-NULL");
    struct store_lock *lk = rc == STORE_OK ? calloc(1, sizeof *lk) : NULL;
    if (rc == STORE_OK && !lk)
        rc = store__fail(STORE_NOMEM, "out of memory");
    if (rc == STORE_OK)
        rc = new_token(lk->token);
    /* Polls: 2 ms doubling to 50 ms between tries, within wait_ms. */
    uint64_t pause = 2, end = t0 + wait_ms * 1000000u;
    while (rc == STORE_OK) {
        op.start_ns = store__now_ns(); /* each try retries on its own */
        rc = st->be->acquire(st->b, &op, STORE_NS_LOCK, name, lk->token, ttl_ms);
        if (rc == STORE_UNAVAILABLE) /* the SET may still happen */
            add_orphan(st, name, lk->token);
        if (rc != STORE_EXISTS)
            break;
        uint64_t now = store__now_ns();
        if (now >= end) {
            rc = store__fail(STORE_BUSY, "session %s is locked by another request", name);
            break;
        }
        if (atomic_load(&st->stop_waits)) {
            rc = store__fail(STORE_STOPPED, "the wait for session %s's lock was stopped", name);
            break;
        }
        uint64_t left = (end - now) / 1000000u + 1;
        sleep_ms(pause < left ? pause : left);
        pause = pause * 2 > 50 ? 50 : pause * 2;
        rc = STORE_OK;
    }
    if (rc == STORE_OK) {
        lk->st = st;
        lk->ttl_ms = ttl_ms;
        snprintf(lk->name, sizeof lk->name, "%s", name);
        *out = lk;
    } else {
        free(lk);
    }
    return op_end(&op, t0, rc);
}

void store_stop_waits(store *st)
{
    atomic_store(&st->stop_waits, 1);
}

int store_lock_refresh(struct store_lock *lk)
{
    if (!lk)
        return store__fail(STORE_INVALID, "store_lock_refresh: NULL lock");
    store_op op = op_begin(lk->st, STORE_KIND_LOCK);
    uint64_t t0 = op.start_ns;
    int rc = lk->st->be->release(lk->st->b, &op, STORE_NS_LOCK, lk->name, lk->token, lk->ttl_ms);
    if (rc == STORE_CONFLICT)
        store__fail(rc, "the lock of session %s expired and was taken or freed", lk->name);
    return op_end(&op, t0, rc);
}

void store_unlock(struct store_lock *lk)
{
    if (!lk)
        return;
    store_op op = op_begin(lk->st, STORE_KIND_LOCK);
    uint64_t t0 = op.start_ns;
    /* A lock we no longer hold is not ours to free; if Redis is down the
     * lock expires by itself. Either way there is nothing to report. */
    int rc = lk->st->be->release(lk->st->b, &op, STORE_NS_LOCK, lk->name, lk->token, 0);
    op_end(&op, t0, rc == STORE_CONFLICT ? STORE_OK : rc);
    if (rc != STORE_OK && rc != STORE_CONFLICT)
        add_orphan(lk->st, lk->name, lk->token);
    free(lk);
}

int store_mark_once(store *st, const char *key, uint64_t ttl_ms)
{
    store_op op = op_begin(st, STORE_KIND_LOCK);
    uint64_t t0 = op.start_ns;
    char token[33];
    int rc = valid_name(key);
    if (rc == STORE_OK && (ttl_ms == 0 || ttl_ms > UINT32_MAX))
        rc = store__fail(STORE_INVALID, "store_mark_once: ttl_ms must be 1..2^32-1");
    if (rc == STORE_OK)
        rc = new_token(token);
    if (rc == STORE_OK)
        rc = st->be->acquire(st->b, &op, STORE_NS_MARK, key, token, ttl_ms);
    if (rc == STORE_EXISTS)
        store__fail(rc, "%s was marked before", key);
    return op_end(&op, t0, rc);
}
