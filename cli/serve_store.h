/*
 * The session store of `eryx serve`: session files kept in Redis (or, with
 * no Redis, in this process), shared by every replica of the service.
 *
 * A session is stored as a manifest (its length, version and the hashes of
 * its non-zero 64 KiB chunks) and its chunks, each compressed with zstd under
 * its content hash in the session's namespace. A put uploads only the chunks
 * the stored manifest lacks and then switches manifest and version in one
 * atomic compare-and-set; a writer that dies before the switch leaves the
 * previous complete session. docs/serve.md, "Session store", has the layout,
 * the failure model and the measurements.
 *
 * Threads: a store is thread-safe; any thread may call any function on it,
 * and on a store_lock (one thread at a time per lock). hiredis and libzstd
 * are opened with dlopen on first use (eryx's start-up does not pay for them).
 *
 * Status codes: every int function returns STORE_OK or one of the codes
 * below; store_errmsg() then says why, on the calling thread.
 */
#ifndef ERYX_SERVE_STORE_H
#define ERYX_SERVE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store;
/* struct store_lock and struct store_stats have no typedef: their names
 * are also functions' (C has one namespace for both). */
struct store_lock;

enum {
    STORE_OK = 0,
    STORE_NOTFOUND,    /* no such session */
    STORE_EXISTS,      /* create: present already; mark_once: marked before */
    STORE_BUSY,        /* locked by another holder; the wait timed out */
    STORE_CONFLICT,    /* the version changed under us (or the lock was lost) */
    STORE_UNAVAILABLE, /* Redis down, slow or refusing, after the retries */
    STORE_CORRUPT,     /* stored bytes fail their checks (hash, manifest) */
    STORE_NOMEM,
    STORE_INVALID,     /* bad argument: name, URL, length, fd */
    STORE_FULL,        /* the memory store's max_bytes would be passed */
    STORE_STOPPED      /* a lock's wait ended by store_stop_waits */
};

/* Names of sessions and marks: 1..STORE_NAME_MAX bytes of [A-Za-z0-9._:-]
 * (they become part of Redis keys). */
#define STORE_NAME_MAX 128
/* The largest session accepted, in bytes. */
#define STORE_MAX_LEN ((uint64_t)8 << 30)

/* url: "redis://[[USER]:PASS@]HOST:PORT[/DB][?timeout_ms=N&retry_ms=N]"
 * (timeout_ms: one command's time limit, default 500; retry_ms: how long an
 * operation retries, with backoff and reconnects, before STORE_UNAVAILABLE,
 * default 2000), or NULL or "memory://" for a store in this process's
 * memory, "memory://?max_bytes=N" for one whose sessions hold at most N
 * bytes (compressed chunks and manifests: a put that would pass it fails
 * with STORE_FULL, the session as it was; Redis has maxmemory). Connects once
 * to check the URL and the server (STORE_UNAVAILABLE if it cannot).
 * *out is the caller's until store_close; err (may be NULL) gets a message. */
int store_open(const char *url, store **out, char *err, size_t errlen);
/* Frees the store and its connections. No call on it may be running; locks
 * still held must have been released (store_unlock) first. NULL is a no-op. */
void store_close(store *st);
/* The last failure's message on this thread; "" if none. Valid until this
 * thread's next store call. */
const char *store_errmsg(void);
/* The status code's name, e.g. "STORE_CONFLICT". */
const char *store_strstatus(int rc);

/* Sessions hold the bytes of a session file. data is read, never kept. */
/* A new session (STORE_EXISTS if present) at a first version chosen at
 * random, so that no version of a deleted session of the same name is one
 * of the new one's: into *version (may be NULL). Later puts count up by 1. */
int store_create(store *st, const char *name, const void *data, size_t len, uint64_t *version);
/* Writes the session's bytes into fd (a memfd or file, which it truncates to
 * the length and fills with pwrite of the non-zero chunks only, so it stays
 * sparse) and its version into *version (may be NULL). Each chunk's hash is
 * checked (STORE_CORRUPT). On failure fd's contents are unspecified. */
int store_get(store *st, const char *name, int fd, uint64_t *version);
/* The stored version, without the bytes: one small round trip. */
int store_version(store *st, const char *name, uint64_t *version);
/* Compare-and-set: replaces the bytes if the stored version is base_version
 * (STORE_CONFLICT if not, STORE_NOTFOUND if there is no session) and sets
 * *new_version (may be NULL) to base_version + 1. After STORE_UNAVAILABLE
 * (of a put or a create) the switch may or may not have happened (its reply
 * was lost): the session is whole at one version or the other, and
 * store_version tells which once Redis answers again. */
int store_put(store *st, const char *name, const void *data, size_t len, uint64_t base_version,
              uint64_t *new_version);
/* store_put (base_version > 0) or store_create (base_version 0) of the
 * bytes of the file fd (a memfd, as eryx_sandbox_save_fd writes it): its
 * holes are known to be zero without being read, which makes a put of a
 * sparse session much cheaper than through a mapping. */
int store_put_fd(store *st, const char *name, int fd, uint64_t base_version,
                 uint64_t *new_version);

/* Removes the session (not its lock). STORE_NOTFOUND if absent. */
int store_delete(store *st, const char *name);

/* Serialises the requests to one session across replicas. The lock expires
 * after ttl_ms unless refreshed (a crashed holder's lock frees itself);
 * store_lock waits up to wait_ms for it (polling with backoff), then returns
 * STORE_BUSY. *out is the caller's until store_unlock. The lock is advisory:
 * a holder whose lock expired can still write, and then store_put's version
 * check refuses its stale write (STORE_CONFLICT). */
int store_lock(store *st, const char *name, uint64_t ttl_ms, uint64_t wait_ms,
               struct store_lock **out);
/* From any thread: store_lock's waits for another holder's lock, those in
 * progress (within ~50 ms) and later ones, end with STORE_STOPPED (a
 * stopping server does not wait out wait_ms past its own grace). */
void store_stop_waits(store *st);
/* Extends the expiry by the lock's ttl; STORE_CONFLICT if it is no longer ours. */
int store_lock_refresh(struct store_lock *lk);
/* Releases the lock if it is still ours (never another holder's), frees lk.
 * NULL is a no-op. */
void store_unlock(struct store_lock *lk);

/* A one-shot marker (e.g. a journal id already resumed) kept for ttl_ms:
 * STORE_OK the first time, STORE_EXISTS while it is set. */
int store_mark_once(store *st, const char *key, uint64_t ttl_ms);

/* Statistics, for Prometheus. Kinds: GET (get, version), PUT (create, put,
 * delete), LOCK (lock, refresh, unlock, mark_once). The histogram counts
 * operations by latency, each in the first bucket whose bound (ms, in
 * store_hist_bounds_ms) it does not exceed, the last bucket unbounded: not
 * cumulative (sum them for Prometheus' le buckets). */
enum { STORE_KIND_GET, STORE_KIND_PUT, STORE_KIND_LOCK, STORE_KINDS };
#define STORE_HIST_BUCKETS 8
extern const double store_hist_bounds_ms[STORE_HIST_BUCKETS - 1];
struct store_stats {
    uint64_t ops[STORE_KINDS];
    uint64_t errors[STORE_KINDS];  /* any result but OK, NOTFOUND, EXISTS, BUSY, CONFLICT */
    uint64_t retries[STORE_KINDS]; /* attempts repeated: after a failed connection or
                                      command, or a get restarted by a put */
    uint64_t latency_ns[STORE_KINDS];
    uint64_t hist[STORE_KINDS][STORE_HIST_BUCKETS];
    uint64_t chunks_uploaded; /* chunks sent by puts (the ones the store lacked) */
    uint64_t chunks_reused;   /* non-zero chunks a put found stored already */
    uint64_t bytes_uploaded;  /* compressed bytes sent */
    uint64_t chunks_fetched;
    uint64_t bytes_fetched;   /* compressed bytes received */
    uint64_t connects;        /* Redis connections opened */
};
/* A snapshot of the counters since store_open. */
void store_stats(store *st, struct store_stats *out);

#endif
