/*
 * `eryx serve` (docs/serve.md): sandboxes as a network service. Layout:
 *   serve.c          options, listeners, connections, HTTP routing, auth
 *   serve_request.c  one WebSocket client: its requests, executions
 *   serve_session.c  sessions: the store, the lock, the replica's cache
 *   serve_journal.c  signed journal tokens
 *   serve_metrics.c  counters, Prometheus text, structured logs
 *   serve_store.c    the session store (memory or Redis)
 *   ws.c ws_conn.c   WebSocket frames and connections; serve_tls.c crypto
 */
#ifndef ERYX_CLI_SERVE_H
#define ERYX_CLI_SERVE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "eryx.h"
#include "listen.h"
#include "net_options.h"
#include "serve_store.h"
#include "serve_tls.h"
#include "ws_conn.h"

/* --max-message at least: what an event's fixed part needs twice over
 * (serve_request.c's EVENT_ROOM), so that output always fits in pieces. */
#define SERVE_MIN_MESSAGE 4096u

typedef struct serve_cfg {
    const char *listen;            /* HOST:PORT */
    const char *redis;             /* redis://HOST:PORT, or NULL (memory) */
    const char *redis_file;        /* --redis-file: the URL's file, or NULL */
    const char *token_file;
    const char *metrics;           /* HOST:PORT or NULL */
    const char *journal_key_file;
    const char *tls_cert, *tls_key, *tls_client_ca;
    const char *image;
    int no_auth;
    int quiet;                     /* no per-request log lines */
    uint32_t pool;                 /* sandboxes in the pool at most */
    uint32_t cache;                /* session sandboxes kept per replica */
    uint32_t max_connections;      /* in all */
    uint32_t max_per_client;       /* from one client address */
    size_t max_message;            /* bytes of one message, either way */
    cli_net net;                   /* --allow-net and friends: the sandboxes' */
    uint64_t max_timeout_ms;       /* per request, at most */
    uint64_t max_fuel;             /* per request, at most (0 = unlimited) */
    uint64_t max_memory, max_output;
    uint64_t store_max_bytes;      /* the memory store's bound (no --redis; 0:
                                      the default) */
    uint32_t max_callbacks;
    uint64_t callback_timeout_ms;
    uint64_t journal_ttl_ms;
    uint64_t lock_ttl_ms, lock_wait_ms;
} serve_cfg;

/* Execution outcomes counted by the metrics. */
enum { M_OK, M_EXCEPTION, M_TIMEOUT, M_INTERRUPTED, M_MEMORY, M_TRAP, M_SUSPENDED,
       M_DIVERGED, M_OTHER, M_NSTATUS };

#define M_NBUCKETS 12

typedef struct serve_metrics {
    atomic_uint_fast64_t connections_total, connections_refused, requests_total;
    atomic_uint_fast64_t executions[M_NSTATUS];
    atomic_uint_fast64_t duration_buckets[M_NBUCKETS + 1], duration_sum_us, duration_count;
    atomic_uint_fast64_t errors_total;
    atomic_uint_fast64_t cache_hits, cache_misses, session_saves, session_save_failures;
    atomic_int connections, executing;
} serve_metrics;

typedef struct cached_session cached_session;

typedef struct server {
    serve_cfg cfg;
    eryx_runtime *rt;
    eryx_pool *pool;
    eryx_sandbox_config sbcfg;
    store *st;
    tls_ctx *tls;
    char token[512];
    size_t token_len;
    uint8_t journal_key[64];
    size_t journal_key_len;
    char replica[64];
    serve_metrics m;
    pthread_mutex_t lock;          /* guards the cache */
    cached_session *cache;         /* most recently used first */
    uint32_t n_cached;
    cli_gate gate;                 /* connections, in all and per client */
    cli_gate metrics_gate;         /* the --metrics port's, apart: a scrape
                                      is answered when the service is full */
    pthread_mutex_t run_mu;        /* guards running */
    pthread_cond_t run_cv;         /* a slot came free (CLOCK_MONOTONIC) */
    uint32_t running;              /* executions holding a --pool slot */
    pthread_mutex_t clients_mu;    /* guards clients */
    struct client *clients;        /* the upgraded connections (serve_request.c) */
    atomic_int stopping;           /* SIGTERM or SIGINT came: no new work */
} server;

int eryx_cli_serve(int argc, char **argv);

/* serve_request.c: sets up the --pool slots every execution holds. */
void serve_slots_init(server *sv);
/* serve_request.c: serves one upgraded WebSocket connection. */
void serve_client(server *sv, ws_conn *c, const char *peer);
/* serve_request.c: after sv->stopping is set, interrupts every running
 * execution, refuses those waiting for a --pool slot (busy) and wakes
 * every connection, which then ends with 1001 once its execution has
 * ended (its session stored and unlocked). */
void serve_stop_clients(server *sv);
/* The sandboxes' on_output: streams to the client of the execution that
 * runs on the calling thread. */
void serve_output(void *ud, int fd, const char *data, size_t len);

/* serve_session.c */
typedef struct session_ref {
    char name[129];
    struct store_lock *lock;
    uint64_t version;              /* of the state the sandbox holds */
    eryx_sandbox *sb;
} session_ref;

int session_name_ok(const char *name);
/* Locks the session and gives its sandbox at the newest version (or, with
 * want_version, exactly that version: else "journal_stale"). create: make
 * it when missing. On failure: an error code name and message. */
int session_open(server *sv, const char *name, int create, uint64_t want_version,
                 session_ref *ref, const char **code, char *msg, size_t msglen);
/* Stores the sandbox's state (if save and it is alive), keeps the sandbox
 * in the cache, unlocks. *saved tells whether it was stored. */
void session_close(server *sv, session_ref *ref, int save, int *saved, char *msg,
                   size_t msglen);
int session_refresh_lock(session_ref *ref);
/* The other session requests: create, fork, reset, delete, info, export,
 * import. Answers the client (a done or an error event). */
void session_op(server *sv, ws_conn *c, json_t *id, const char *op, json_t *req);
void session_cache_free(server *sv);
/* A fresh sandbox's state in the store under name (create or reset). */

/* serve_journal.c */
typedef struct journal_meta {
    char session[129];             /* "" for an execution in a fresh sandbox */
    uint64_t version;
    char id[33];
    json_t *pending;               /* [{call, name}] in order; owned */
} journal_meta;

/* The token for journal j (signed). NULL on failure. Caller frees. */
char *journal_token(server *sv, const journal_meta *meta, eryx_journal *j);
/* Checks a token and gives its journal and metadata. On failure NULL and
 * *code ("journal_invalid"). */
eryx_journal *journal_open(server *sv, const char *token, journal_meta *meta, const char **code,
                           char *msg, size_t msglen);
/* Marks the token's id used (once the session is locked): 0, or -1 with
 * "journal_used" when it was resumed before. */
int journal_claim(server *sv, const journal_meta *meta, const char **code, char *msg,
                  size_t msglen);

/* serve_metrics.c */
void metrics_execution(server *sv, int status_index, uint64_t duration_ns);
char *metrics_text(server *sv);
void serve_log(server *sv, const char *event, json_t *fields);
int metrics_status_index(int rc, const eryx_result *r);

/* An error event for request id. */
int send_error(ws_conn *c, json_t *id, const char *code, const char *message);

#endif
