/*
 * The session store in this process's memory (store_open with no URL): the
 * backend of one replica without Redis, and of the tests. Same semantics as
 * Redis (serve_redis.c): sessions of chunks under their hashes, the manifest
 * switched under one mutex, locks and marks that expire. Chunks stay
 * compressed; a get holds references to them, not the mutex, while it
 * decompresses. What the sessions hold (chunks and manifests) may be
 * bounded (max_bytes): a put that would pass it fails with STORE_FULL and
 * leaves the session as it was, as Redis at its maxmemory does.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "serve_store_int.h"

/* ---- A map from byte strings to pointers (chained, doubling) ------------ */

typedef struct mnode {
    struct mnode *next;
    void *val;
    size_t klen;
    uint8_t key[];
} mnode;

typedef struct bmap {
    mnode **b;
    size_t nb, n;
} bmap;

static mnode **bmap_slot(bmap *m, const void *k, size_t kl)
{
    if (!m->nb)
        return NULL;
    mnode **p = &m->b[XXH3_64bits(k, kl) & (m->nb - 1)];
    while (*p && ((*p)->klen != kl || memcmp((*p)->key, k, kl) != 0))
        p = &(*p)->next;
    return p;
}

static void *bmap_get(bmap *m, const void *k, size_t kl)
{
    mnode **p = bmap_slot(m, k, kl);
    return p && *p ? (*p)->val : NULL;
}

/* Adds a key not present; -1 when out of memory. */
static int bmap_add(bmap *m, const void *k, size_t kl, void *val)
{
    if (m->n + 1 > m->nb) {
        size_t nb = m->nb ? m->nb * 2 : 16;
        mnode **b = calloc(nb, sizeof *b);
        if (!b)
            return -1;
        for (size_t i = 0; i < m->nb; i++)
            for (mnode *e = m->b[i], *next; e; e = next) {
                next = e->next;
                mnode **s = &b[XXH3_64bits(e->key, e->klen) & (nb - 1)];
                e->next = *s;
                *s = e;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    mnode *e = malloc(sizeof *e + kl);
    if (!e)
        return -1;
    memcpy(e->key, k, kl);
    e->klen = kl;
    e->val = val;
    mnode **s = &m->b[XXH3_64bits(k, kl) & (m->nb - 1)];
    e->next = *s;
    *s = e;
    m->n++;
    return 0;
}

/* Removes the node at *p and returns its value. */
static void *bmap_unlink(bmap *m, mnode **p)
{
    mnode *e = *p;
    void *val = e->val;
    *p = e->next;
    free(e);
    m->n--;
    return val;
}

static void *bmap_del(bmap *m, const void *k, size_t kl)
{
    mnode **p = bmap_slot(m, k, kl);
    return p && *p ? bmap_unlink(m, p) : NULL;
}

/* ---- The store ----------------------------------------------------------- */

typedef struct blob { /* one compressed chunk, shared with running gets */
    int refs;
    size_t len;
    uint8_t data[];
} blob;

typedef struct msession {
    uint64_t version; /* 0: chunks of a create not committed yet */
    uint8_t *manifest;
    size_t mlen;
    bmap chunks;      /* hash -> blob */
} msession;

typedef struct mheld { /* a lock or a mark */
    char token[33];
    uint64_t expires_ns;
} mheld;

typedef struct mem {
    pthread_mutex_t mu;
    bmap sessions;
    uint64_t bytes;       /* the sessions' chunks and manifests */
    uint64_t max_bytes;   /* 0: no bound */
    bmap held[2];         /* STORE_NS_LOCK, STORE_NS_MARK */
    size_t sweep_at[2];   /* sweep expired entries when a map grows past it */
} mem;

static void blob_unref(blob *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

/* Drops a chunk of a session (its bytes no longer count). */
static void chunk_drop(mem *m, blob *b)
{
    if (b)
        m->bytes -= b->len;
    blob_unref(b);
}

static void session_free(mem *m, msession *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->chunks.nb; i++)
        while (s->chunks.b[i])
            chunk_drop(m, bmap_unlink(&s->chunks, &s->chunks.b[i]));
    free(s->chunks.b);
    m->bytes -= s->mlen;
    free(s->manifest);
    free(s);
}

static msession *session_get(mem *m, const char *name, int create)
{
    msession *s = bmap_get(&m->sessions, name, strlen(name));
    if (s || !create)
        return s;
    if (!(s = calloc(1, sizeof *s)) || bmap_add(&m->sessions, name, strlen(name), s) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static int mem_meta(void *b, store_op *op, const char *name, uint64_t *version,
                    uint8_t **manifest, size_t *mlen)
{
    mem *m = b;
    int rc = STORE_OK;
    pthread_mutex_lock(&m->mu);
    msession *s = session_get(m, name, 0);
    *version = s ? s->version : 0;
    if (!s || !s->version)
        rc = STORE_NOTFOUND;
    else if (manifest) {
        *mlen = s->mlen;
        if ((*manifest = malloc(s->mlen)))
            memcpy(*manifest, s->manifest, s->mlen);
        else
            rc = store__fail(STORE_NOMEM, "out of memory");
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Takes back the chunks a failed put_chunks added: those of the first n
 * hashes that added[] marks (not the ones of the put's earlier calls: a
 * concurrent create of the name may share them; the next commit of the
 * name sweeps them). A session never committed and left empty goes. */
static void put_undo(mem *m, const char *name, msession *s, const uint8_t *hashes,
                     const unsigned char *added, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (added[i])
            chunk_drop(m, bmap_del(&s->chunks, hashes + i * STORE_HASH, STORE_HASH));
    if (!s->version && s->chunks.n == 0)
        session_free(m, bmap_del(&m->sessions, name, strlen(name)));
}

static int mem_put_chunks(void *b, store_op *op, const char *name, size_t n,
                          const uint8_t *hashes, const void *const *data, const size_t *lens)
{
    mem *m = b;
    int rc = STORE_OK;
    unsigned char *added = calloc(n ? n : 1, 1);
    if (!added)
        return store__fail(STORE_NOMEM, "out of memory");
    pthread_mutex_lock(&m->mu);
    msession *s = session_get(m, name, 1);
    if (!s)
        rc = store__fail(STORE_NOMEM, "out of memory");
    size_t i = 0;
    for (; rc == STORE_OK && i < n; i++) {
        const uint8_t *h = hashes + i * STORE_HASH;
        if (bmap_get(&s->chunks, h, STORE_HASH))
            continue;
        /* (Manifests, not checked, may have taken bytes past the bound.) */
        if (m->max_bytes && (m->bytes >= m->max_bytes || lens[i] > m->max_bytes - m->bytes)) {
            rc = store__fail(STORE_FULL, "the session store is full (it holds at most %llu "
                             "bytes, compressed)", (unsigned long long)m->max_bytes);
            break;
        }
        blob *bl = malloc(sizeof *bl + lens[i]);
        if (!bl || bmap_add(&s->chunks, h, STORE_HASH, bl) < 0) {
            free(bl);
            rc = store__fail(STORE_NOMEM, "out of memory");
            break;
        }
        bl->refs = 1;
        bl->len = lens[i];
        memcpy(bl->data, data[i], lens[i]);
        m->bytes += lens[i];
        added[i] = 1;
    }
    if (rc != STORE_OK && s)
        put_undo(m, name, s, hashes, added, i);
    pthread_mutex_unlock(&m->mu);
    free(added);
    return rc;
}

static int cmp_hash(const void *a, const void *b) { return memcmp(a, b, STORE_HASH); }

/* Drops the chunks c no longer needs: the removed ones, then any other
 * not in refs (sorted) when more are left than referenced. */
static void sweep_chunks(mem *m, msession *s, const store_commit *c)
{
    for (size_t i = 0; i < c->nremoved; i++)
        chunk_drop(m, bmap_del(&s->chunks, c->removed + i * STORE_HASH, STORE_HASH));
    if (s->chunks.n <= c->nrefs)
        return;
    for (size_t i = 0; i < s->chunks.nb; i++)
        for (mnode **p = &s->chunks.b[i]; *p;) {
            if (bsearch((*p)->key, c->refs, c->nrefs, STORE_HASH, cmp_hash))
                p = &(*p)->next;
            else
                chunk_drop(m, bmap_unlink(&s->chunks, p));
        }
}

static int mem_commit(void *b, store_op *op, const char *name, const store_commit *c)
{
    mem *m = b;
    int rc = STORE_OK;
    pthread_mutex_lock(&m->mu);
    msession *s = session_get(m, name, c->base == 0);
    uint8_t *copy = malloc(c->manifest_len);
    if (!copy)
        rc = store__fail(STORE_NOMEM, "out of memory");
    else if (c->base == 0 && s && s->version)
        rc = STORE_EXISTS;
    else if (c->base == 0 && !s)
        rc = store__fail(STORE_NOMEM, "out of memory");
    else if (c->base != 0 && (!s || !s->version))
        rc = STORE_NOTFOUND;
    else if (c->base != 0 && s->version != c->base)
        rc = STORE_CONFLICT;
    if (rc == STORE_OK) {
        memcpy(copy, c->manifest, c->manifest_len);
        free(s->manifest);
        m->bytes += c->manifest_len - s->mlen;
        s->manifest = copy;
        s->mlen = c->manifest_len;
        s->version = c->newv;
        sweep_chunks(m, s, c);
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_get_chunks(void *b, store_op *op, const char *name, size_t n,
                          const uint8_t *hashes, store_chunk_fn fn, void *arg)
{
    mem *m = b;
    blob *got[64];
    if (n > sizeof got / sizeof got[0])
        return store__fail(STORE_INVALID, "%zu chunks in one call", n);
    pthread_mutex_lock(&m->mu);
    msession *s = session_get(m, name, 0);
    for (size_t i = 0; i < n; i++) {
        got[i] = s ? bmap_get(&s->chunks, hashes + i * STORE_HASH, STORE_HASH) : NULL;
        if (got[i])
            __atomic_add_fetch(&got[i]->refs, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&m->mu);
    int rc = STORE_OK;
    for (size_t i = 0; i < n; i++) {
        if (rc == STORE_OK) {
            rc = fn(arg, i, got[i] ? got[i]->data : NULL, got[i] ? got[i]->len : 0);
            if (got[i]) {
                store__count(op, STORE_C_FETCHED, 1);
                store__count(op, STORE_C_FETCHED_BYTES, got[i]->len);
            }
        }
        blob_unref(got[i]);
    }
    return rc;
}

static int mem_del(void *b, store_op *op, const char *name)
{
    mem *m = b;
    pthread_mutex_lock(&m->mu);
    msession *s = bmap_del(&m->sessions, name, strlen(name));
    int rc = s && s->version ? STORE_OK : STORE_NOTFOUND;
    session_free(m, s);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Frees the expired entries of a lock or mark map once it has doubled since
 * the last sweep: marks are never released, so this bounds them to the ones
 * alive. */
static void sweep_held(mem *m, int ns, uint64_t now)
{
    bmap *h = &m->held[ns];
    if (h->n < m->sweep_at[ns])
        return;
    for (size_t i = 0; i < h->nb; i++)
        for (mnode **p = &h->b[i]; *p;) {
            if (((mheld *)(*p)->val)->expires_ns <= now)
                free(bmap_unlink(h, p));
            else
                p = &(*p)->next;
        }
    m->sweep_at[ns] = h->n * 2 > 1024 ? h->n * 2 : 1024;
}

static int mem_acquire(void *b, store_op *op, int ns, const char *name, const char *token,
                       uint64_t ttl_ms)
{
    mem *m = b;
    uint64_t now = store__now_ns();
    int rc = STORE_OK;
    pthread_mutex_lock(&m->mu);
    sweep_held(m, ns, now);
    mheld *e = bmap_get(&m->held[ns], name, strlen(name));
    if (e && e->expires_ns > now && strcmp(e->token, token) != 0) {
        rc = STORE_EXISTS;
    } else if (!e) {
        e = malloc(sizeof *e);
        if (!e || bmap_add(&m->held[ns], name, strlen(name), e) < 0) {
            free(e);
            e = NULL;
            rc = store__fail(STORE_NOMEM, "out of memory");
        }
    }
    if (rc == STORE_OK && e) {
        size_t n = strnlen(token, sizeof e->token - 1);
        memcpy(e->token, token, n);
        e->token[n] = '\0';
        e->expires_ns = now + ttl_ms * 1000000u;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_release(void *b, store_op *op, int ns, const char *name, const char *token,
                       uint64_t ttl_ms)
{
    mem *m = b;
    uint64_t now = store__now_ns();
    int rc = STORE_OK;
    pthread_mutex_lock(&m->mu);
    mheld *e = bmap_get(&m->held[ns], name, strlen(name));
    if (!e || e->expires_ns <= now || strcmp(e->token, token) != 0)
        rc = STORE_CONFLICT;
    else if (ttl_ms)
        e->expires_ns = now + ttl_ms * 1000000u;
    else
        free(bmap_del(&m->held[ns], name, strlen(name)));
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void mem_close(void *b)
{
    mem *m = b;
    for (size_t i = 0; i < m->sessions.nb; i++)
        while (m->sessions.b[i])
            session_free(m, bmap_unlink(&m->sessions, &m->sessions.b[i]));
    free(m->sessions.b);
    for (int ns = 0; ns < 2; ns++) {
        for (size_t i = 0; i < m->held[ns].nb; i++)
            while (m->held[ns].b[i])
                free(bmap_unlink(&m->held[ns], &m->held[ns].b[i]));
        free(m->held[ns].b);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const store_backend mem_backend = {
    mem_meta, mem_put_chunks, mem_commit, mem_get_chunks, mem_del, mem_acquire, mem_release,
    mem_close,
};

int store__mem_open(uint64_t max_bytes, const store_backend **be, void **b)
{
    mem *m = calloc(1, sizeof *m);
    if (!m)
        return store__fail(STORE_NOMEM, "out of memory");
    m->max_bytes = max_bytes;
    pthread_mutex_init(&m->mu, NULL);
    m->sweep_at[0] = m->sweep_at[1] = 1024;
    *be = &mem_backend;
    *b = m;
    return STORE_OK;
}
