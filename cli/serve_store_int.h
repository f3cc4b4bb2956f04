/*
 * Inside the session store: the manifest's codec (fuzzed:
 * tests/fuzz/fuzz_store_manifest.c), the backends' interface (Redis in
 * serve_redis.c, memory in serve_store_mem.c) and the counters they share.
 * serve_store.c owns chunking, hashing, compression and the checks on load;
 * a backend only moves opaque chunks, manifests, versions and tokens.
 */
#ifndef ERYX_SERVE_STORE_INT_H
#define ERYX_SERVE_STORE_INT_H

#include "serve_store.h"

#define STORE_CHUNK ((size_t)64 << 10) /* chunk size of new manifests */
#define STORE_HASH 16                  /* XXH3-128, big-endian canonical form */

/* ---- Manifest: header, then one entry per non-zero chunk ----------------
 *   "ERYXSM01" | version u64 | length u64 | chunk_size u32 | count u32
 *   count x { index u32 | hash[16] }          (integers little-endian)
 * Indices strictly increase and are below ceil(length / chunk_size); chunks
 * not listed are zero. */
#define STORE_MANIFEST_HEAD 32
#define STORE_MANIFEST_ENTRY 20
typedef struct store_manifest {
    uint64_t version, length;
    uint32_t chunk_size, count;
    const uint8_t *entries; /* into the decoded bytes */
} store_manifest;
/* Checks untrusted bytes and fills *m (pointing into p): STORE_OK or
 * STORE_CORRUPT with a message. */
int store_manifest_decode(const uint8_t *p, size_t n, store_manifest *m);
uint32_t store_manifest_index(const store_manifest *m, uint32_t i);
const uint8_t *store_manifest_hash(const store_manifest *m, uint32_t i);
/* The bytes of a manifest (malloc'd, *n long) whose entries are given as
 * parallel arrays; NULL when out of memory. */
uint8_t *store_manifest_encode(uint64_t version, uint64_t length, uint32_t chunk_size,
                               uint32_t count, const uint32_t *index, const uint8_t *hashes,
                               size_t *n);

/* ---- One operation, as the backends see it ------------------------------ */
typedef struct store_op {
    store *st;
    int kind;              /* STORE_KIND_* */
    uint64_t start_ns;     /* CLOCK_MONOTONIC; retries stop retry_ms after it */
} store_op;

/* The manifest switch of a put or create: atomically, if the stored version
 * is base (0: no session may exist), store version newv and the manifest,
 * drop the chunks in removed, and drop any other chunk not in refs (leftovers
 * of interrupted puts). OK, CONFLICT, NOTFOUND or EXISTS. */
typedef struct store_commit {
    uint64_t base, newv;
    const uint8_t *manifest;
    size_t manifest_len;
    const uint8_t *removed; /* nremoved hashes, back to back */
    size_t nremoved;
    const uint8_t *refs;    /* nrefs distinct hashes the manifest references */
    size_t nrefs;
} store_commit;

/* Locks and marks share one primitive, each in its own namespace. */
enum { STORE_NS_LOCK, STORE_NS_MARK };

/* Called for each chunk asked for, with its stored bytes, or NULL if absent. */
typedef int (*store_chunk_fn)(void *arg, size_t i, const void *data, size_t len);

typedef struct store_backend {
    /* The version (0 and STORE_NOTFOUND if none) and, if manifest is not
     * NULL, the manifest's bytes (malloc'd). */
    int (*meta)(void *b, store_op *op, const char *name, uint64_t *version, uint8_t **manifest,
                size_t *mlen);
    /* Stores n chunks under their hashes (idempotent). */
    int (*put_chunks)(void *b, store_op *op, const char *name, size_t n, const uint8_t *hashes,
                      const void *const *data, const size_t *lens);
    int (*commit)(void *b, store_op *op, const char *name, const store_commit *c);
    /* Calls fn for each of n chunks, in order; stops at fn's first non-OK. */
    int (*get_chunks)(void *b, store_op *op, const char *name, size_t n, const uint8_t *hashes,
                      store_chunk_fn fn, void *arg);
    int (*del)(void *b, store_op *op, const char *name);
    /* Sets name to token for ttl_ms unless another token holds it: OK if it
     * is (now) ours, EXISTS if not. */
    int (*acquire)(void *b, store_op *op, int ns, const char *name, const char *token,
                   uint64_t ttl_ms);
    /* If name holds token: ttl_ms > 0 extends it, 0 deletes it; OK, or
     * CONFLICT if it does not hold token. */
    int (*release)(void *b, store_op *op, int ns, const char *name, const char *token,
                   uint64_t ttl_ms);
    void (*close)(void *b);
} store_backend;

int store__redis_open(const char *url, const store_backend **be, void **b, store *st);
/* max_bytes: what the sessions may hold in all, compressed (0: no bound). */
int store__mem_open(uint64_t max_bytes, const store_backend **be, void **b);

/* Counters the backends add to (atomically). */
enum { STORE_C_RETRY, STORE_C_CONNECT, STORE_C_FETCHED, STORE_C_FETCHED_BYTES };
void store__count(store_op *op, int counter, uint64_t n);
/* Sets this thread's message and returns rc. */
int store__fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t store__now_ns(void);
/* Opens soname (kept open) and sets *ptrs[i] to each symbol names[i]: 1, or
 * 0 with why set. For the libraries opened on first use (hiredis, zstd). */
int store__dlopen(const char *soname, const char *const *names, void **const *ptrs, size_t n,
                  char *why, size_t whylen);

#endif
